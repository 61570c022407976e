//! A deterministic network simulator with virtual time: Ethernet-like
//! links with delay, jitter, loss, MTU and up/down, that deliver frames by
//! MAC; routers ([`crate::router::Router`]) that forward and advertise
//! prefixes; hosts with any number of interfaces that wrap the `common`
//! engines, Neighbor Discovery and all; traffic generators; a pcap per
//! link and an event trace.
//!
//! Time jumps from one scheduled thing to the next, so an idle hour costs
//! nothing. One seed drives every random choice (link jitter and loss, and
//! each engine's RNG), so the same seed gives the same bytes.

use std::io;
use std::net::Ipv6Addr;
use std::path::PathBuf;

use common::ike::IkeEvent;
use common::keylog::{self, KeyTable};
use common::nd::Membership;
use common::node::{Cn, Command, Engine, Event, Ha, Iface, Mn, Transmit};
use common::time::{Duration, Instant};
use common::wire::icmpv6::{Icmpv6Repr, ECHO_REPLY, ECHO_REQUEST};
use common::wire::packet::UdpPayload;
use common::wire::{CodePoints, IpRepr, Ipv6Packet, MacAddr, PacketRepr, UdpRepr, UpperRepr};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::tools::pcap::PcapWriter;
use crate::tools::Error;

mod link;
mod queue;

use crate::router::{Router, RouterLink};
use link::Link;
pub use link::{Draws, Fate, Hop, LinkId, LinkModel, LinkParams, LinkStats, Port};
use queue::RadixHeap;

/// The source MAC of frames [`Sim::inject`] puts on a link.
pub const INJECTOR_MAC: MacAddr = MacAddr([0x02, 0xff, 0xff, 0xff, 0xff, 0xff]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// The engine a host runs.
#[derive(Clone)]
pub enum Role {
    Mn(Box<Mn>),
    Ha(Box<Ha>),
    Cn(Box<Cn>),
}

impl Role {
    fn engine(&mut self) -> &mut dyn Engine {
        match self {
            Role::Mn(e) => e.as_mut(),
            Role::Ha(e) => e.as_mut(),
            Role::Cn(e) => e.as_mut(),
        }
    }

    fn engine_ref(&self) -> &dyn Engine {
        match self {
            Role::Mn(e) => e.as_ref(),
            Role::Ha(e) => e.as_ref(),
            Role::Cn(e) => e.as_ref(),
        }
    }
}

#[derive(Clone)]
enum Kind {
    Host {
        role: Role,
        /// The link each interface is on, by interface number.
        ifaces: Vec<Option<LinkId>>,
    },
    Router {
        router: Box<Router>,
        /// Interface `i` is on `links[i]`.
        links: Vec<LinkId>,
    },
}

impl Kind {
    fn link_of(&self, iface: u8) -> Option<LinkId> {
        match self {
            Kind::Host { ifaces, .. } => ifaces.get(usize::from(iface)).copied().flatten(),
            Kind::Router { links, .. } => links.get(usize::from(iface)).copied(),
        }
    }
}

#[derive(Clone)]
struct Node {
    name: String,
    kind: Kind,
    /// When the engine wants its next timeout.
    wake: Option<Instant>,
    /// The earliest wake-up of it in the queue: a timeout that moves
    /// later waits for that one instead of adding another.
    queued: Option<Instant>,
}

/// How a packet reached a host's stack, from the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    RouteOptimised,
    Tunnelled,
    Direct,
}

/// A traffic-generator packet that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub flow: u32,
    pub seq: u64,
    pub sent: Instant,
    pub at: Instant,
    pub path: Path,
    /// The link it came in on (`None`: not from a link).
    pub link: Option<LinkId>,
}

/// An echo reply that came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingResult {
    pub node: NodeId,
    pub sent: Instant,
    pub rtt: Duration,
    /// How the reply came in.
    pub path: Path,
}

/// A line of the trace, as [`Sim::trace`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub at: Instant,
    pub node: String,
    pub what: String,
}

/// What the trace holds, written out only when read: a run of 10 000
/// nodes makes millions of lines, and formatting them as they came took
/// an eighth of its time and a third of its memory.
#[derive(Debug, Clone)]
enum Traced {
    Event(Event),
    Moved { iface: u8, to: Option<LinkId> },
    Restarted,
    Link { link: LinkId, up: bool },
}

/// A UDP stream from a host's stack, one packet per interval.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub from: NodeId,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub interval: Duration,
    pub until: Instant,
}

/// The UDP port of the traffic generators' flows.
pub const FLOW_PORT: u16 = 9000;
const MAGIC: &[u8; 4] = b"MIP6";

/// A flow datagram's payload: magic, flow, sequence number, send time in
/// µs (virtual here, the wall clock in the real demo).
pub fn flow_payload(flow: u32, seq: u64, sent_us: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(24);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&flow.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&sent_us.to_be_bytes());
    p
}

/// (flow, seq, sent_us) of a flow payload.
pub fn parse_flow(p: &[u8]) -> Option<(u32, u64, u64)> {
    if p.len() != 24 || &p[..4] != MAGIC {
        return None;
    }
    let flow = u32::from_be_bytes(p[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(p[8..16].try_into().ok()?);
    let sent = u64::from_be_bytes(p[16..24].try_into().ok()?);
    Some((flow, seq, sent))
}

#[derive(Clone)]
enum Ev {
    /// A frame reaches every interface of `to`, in order: one event and
    /// one copy of the bytes however many listen.
    Arrive {
        to: Vec<Port>,
        link: LinkId,
        src_mac: MacAddr,
        bytes: Vec<u8>,
    },
    Wake(NodeId),
    Flow(usize),
    Ping {
        node: NodeId,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        interval: Duration,
        until: Instant,
    },
    Move {
        port: Port,
        to: Option<LinkId>,
    },
    SetLink {
        link: LinkId,
        up: bool,
    },
}

/// An event's place in [`Sim::queue`]: when it is due, in microseconds,
/// then its sequence number; [`due`] reads the time back.
fn queue_key(at: Instant, seq: u64) -> u128 {
    u128::from(at.total_micros()) << 64 | u128::from(seq)
}

fn due(key: u128) -> Instant {
    Instant::from_micros(u64::try_from(key >> 64).unwrap_or(u64::MAX))
}

#[derive(Clone)]
pub struct Sim {
    now: Instant,
    seed: u64,
    rng: ChaCha20Rng,
    links: Vec<Link>,
    nodes: Vec<Node>,
    /// Slots of [`Sim::events`] by when they are due and in scheduling
    /// order: time in microseconds, then a sequence number.
    queue: RadixHeap<usize>,
    /// The events the queue points at; free slots are reused: the queue
    /// moves these indices, not the events.
    events: Vec<Option<Ev>>,
    free: Vec<usize>,
    next_seq: u64,
    flows: Vec<(Flow, u64)>,
    pub arrivals: Vec<Arrival>,
    pub pings: Vec<PingResult>,
    /// Who: a node, or the simulator itself.
    trace: Vec<(Instant, Option<NodeId>, Traced)>,
    /// Key-log rows (Wireshark's `ikev2_decryption_table` and `esp_sa`) of
    /// every SA of the run: the static ones, and what IKE negotiated.
    pub keylog: Vec<(KeyTable, String)>,
    /// When each host's interface came up on a link.
    pub link_ups: Vec<(Instant, Port, LinkId)>,
    /// How the packet being handed to a host's stack arrived.
    last_path: Option<(Path, LinkId)>,
    cp: CodePoints,
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Sim {
            now: Instant::ZERO,
            seed,
            rng: ChaCha20Rng::seed_from_u64(seed),
            links: vec![],
            nodes: vec![],
            queue: RadixHeap::default(),
            events: vec![],
            free: vec![],
            next_seq: 0,
            flows: vec![],
            arrivals: vec![],
            pings: vec![],
            trace: vec![],
            keylog: vec![],
            link_ups: vec![],
            last_path: None,
            cp: CodePoints::default(),
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// A seed for the engine of the next node, derived from the run's seed.
    pub fn engine_seed(&self) -> u64 {
        self.seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(self.nodes.len() as u64)
    }

    pub fn add_link(&mut self, name: &str, prefix: Ipv6Addr, params: LinkParams) -> LinkId {
        self.links.push(Link::new(name, prefix, params));
        LinkId(self.links.len() - 1)
    }

    /// What `link` carried so far, if it is captured.
    pub fn captured(&self, link: LinkId) -> &[(Instant, Vec<u8>)] {
        self.links[link.0].capture.as_deref().unwrap_or(&[])
    }

    /// The ends of each frame of [`Sim::captured`], in the same order.
    pub fn hops(&self, link: LinkId) -> &[Hop] {
        &self.links[link.0].hops
    }

    /// Record every packet sent on `link`, for [`Sim::write_pcaps`].
    pub fn capture(&mut self, link: LinkId) {
        self.links[link.0].capture = Some(vec![]);
    }

    /// A router on `links` (its interface `i` on `links[i]`), advertising
    /// each link's prefix every `ra_interval`.
    pub fn add_router(&mut self, name: &str, links: &[LinkId], ra_interval: Duration) -> NodeId {
        let id = NodeId(self.nodes.len());
        let ports: Vec<RouterLink> = links
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let port = Port {
                    node: id,
                    iface: i as u8,
                };
                self.links[l.0].attach(port);
                RouterLink {
                    prefix: self.links[l.0].prefix,
                    mac: port.mac(),
                }
            })
            .collect();
        let router = Router::new(self.now, &ports, ra_interval, self.engine_seed());
        self.nodes.push(Node {
            name: name.to_string(),
            kind: Kind::Router {
                router: Box::new(router),
                links: links.to_vec(),
            },
            wake: None,
            queued: None,
        });
        self.after(id);
        id
    }

    /// A host whose interface `i` is on `links[i]`, carrier up on each.
    pub fn add_host(&mut self, name: &str, role: Role, links: &[Option<LinkId>]) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(Node {
            name: name.to_string(),
            kind: Kind::Host {
                role,
                ifaces: vec![None; links.len()],
            },
            wake: None,
            queued: None,
        });
        for (i, l) in links.iter().enumerate() {
            if let Some(l) = l {
                self.attach(
                    Port {
                        node: id,
                        iface: i as u8,
                    },
                    *l,
                );
            }
        }
        self.after(id);
        id
    }

    /// The MAC a host's engine uses for `addr` on `link`, else the link's
    /// router's (where an off-link destination goes).
    pub fn mac_for(&self, link: LinkId, addr: Ipv6Addr) -> Option<MacAddr> {
        if addr.is_multicast() {
            return Some(MacAddr::ipv6_multicast(addr));
        }
        let mut router = None;
        for p in self.links[link.0].ports() {
            match &self.nodes[p.node.0].kind {
                Kind::Host { role, .. } => {
                    let owns = role
                        .engine_ref()
                        .interface(p.iface)
                        .is_some_and(|nd| nd.usable(addr) || nd.is_proxying(addr));
                    if owns {
                        return Some(p.mac());
                    }
                }
                Kind::Router { .. } => router = Some(p.mac()),
            }
        }
        router
    }

    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    pub fn link_name(&self, link: LinkId) -> &str {
        &self.links[link.0].name
    }

    pub fn link_stats(&self, link: LinkId) -> LinkStats {
        self.links[link.0].model.stats
    }

    /// `link`'s delay, jitter, loss and MTU.
    pub fn link_params(&self, link: LinkId) -> LinkParams {
        self.links[link.0].model.params
    }

    /// Changes `link`'s delay, jitter, loss and MTU from now on.
    pub fn set_link_params(&mut self, link: LinkId, params: LinkParams) {
        self.links[link.0].model.params = params;
    }

    pub fn role(&self, node: NodeId) -> Option<&Role> {
        match &self.nodes[node.0].kind {
            Kind::Host { role, .. } => Some(role),
            Kind::Router { .. } => None,
        }
    }

    pub fn role_mut(&mut self, node: NodeId) -> Option<&mut Role> {
        match &mut self.nodes[node.0].kind {
            Kind::Host { role, .. } => Some(role),
            Kind::Router { .. } => None,
        }
    }

    pub fn engine(&self, node: NodeId) -> Option<&dyn Engine> {
        self.role(node).map(Role::engine_ref)
    }

    pub fn mn(&self, node: NodeId) -> Option<&Mn> {
        match self.role(node) {
            Some(Role::Mn(m)) => Some(m),
            _ => None,
        }
    }

    pub fn ha(&self, node: NodeId) -> Option<&Ha> {
        match self.role(node) {
            Some(Role::Ha(h)) => Some(h),
            _ => None,
        }
    }

    pub fn cn(&self, node: NodeId) -> Option<&Cn> {
        match self.role(node) {
            Some(Role::Cn(c)) => Some(c),
            _ => None,
        }
    }

    /// At `at`, takes interface `iface` of `node` off its link (carrier
    /// down) and puts it on `to` (carrier up), or leaves it off.
    pub fn move_at(&mut self, at: Instant, node: NodeId, iface: u8, to: Option<LinkId>) {
        self.schedule(
            at,
            Ev::Move {
                port: Port { node, iface },
                to,
            },
        );
    }

    pub fn set_link_at(&mut self, at: Instant, link: LinkId, up: bool) {
        self.schedule(at, Ev::SetLink { link, up });
    }

    pub fn flow(&mut self, start: Instant, flow: Flow) -> u32 {
        self.flows.push((flow, 0));
        let id = self.flows.len() - 1;
        self.schedule(start, Ev::Flow(id));
        u32::try_from(id).unwrap_or(u32::MAX)
    }

    pub fn flow_sent(&self, flow: u32) -> u64 {
        self.flows.get(flow as usize).map_or(0, |f| f.1)
    }

    #[allow(clippy::too_many_arguments, reason = "one ping schedule")]
    pub fn ping(
        &mut self,
        start: Instant,
        node: NodeId,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        interval: Duration,
        until: Instant,
    ) {
        self.schedule(
            start,
            Ev::Ping {
                node,
                src,
                dst,
                interval,
                until,
            },
        );
    }

    /// Puts `bytes` on `link` as if a station there (an attacker, a test)
    /// sent them now, to the MAC of whoever answers for the destination
    /// (the router for an off-link one).
    pub fn inject(&mut self, link: LinkId, bytes: Vec<u8>) {
        let dst = Ipv6Packet::new_checked(&bytes[..])
            .ok()
            .map(|p| p.dst_addr());
        let mac = dst
            .and_then(|d| self.mac_for(link, d))
            .unwrap_or(MacAddr::BROADCAST);
        self.transmit(None, link, mac, bytes);
    }

    /// Hands `bytes` to `node`'s engine as if its stack sent them.
    pub fn send_from_stack(&mut self, node: NodeId, bytes: &[u8]) {
        self.with_engine(node, |e, now| {
            e.handle_packet(now, Iface::Stack, None, bytes)
        });
    }

    pub fn command(&mut self, node: NodeId, command: Command) {
        self.with_engine(node, |e, now| {
            // The simulator only issues commands the engines take.
            let _ = e.handle_command(now, command);
        });
    }

    /// Replaces a host's engine by `role` now: a restart that lost every
    /// state. Its interfaces stay on their links and come up again (the
    /// groups the old engine listened to are forgotten; the new one starts
    /// Neighbor Discovery); frames on their way reach the new engine.
    pub fn restart(&mut self, node: NodeId, role: Role) {
        let Kind::Host { role: old, ifaces } = &mut self.nodes[node.0].kind else {
            return;
        };
        *old = role;
        let ports: Vec<(Port, LinkId)> = ifaces
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let iface = u8::try_from(i).ok()?;
                Some((Port { node, iface }, (*l)?))
            })
            .collect();
        self.trace_line(Some(node), Traced::Restarted);
        for (port, link) in ports {
            self.links[link.0].detach(port);
            self.attach(port, link);
        }
        self.after(node);
    }

    /// Runs `f` on a host's role now (an operator's request, e.g. a home
    /// agent's switch of its mobile nodes), then sends what it produced.
    pub fn act(&mut self, node: NodeId, f: impl FnOnce(&mut Role, Instant)) {
        let now = self.now;
        if let Kind::Host { role, .. } = &mut self.nodes[node.0].kind {
            f(role, now);
        }
        self.after(node);
    }

    fn with_engine(&mut self, node: NodeId, f: impl FnOnce(&mut dyn Engine, Instant)) {
        let now = self.now;
        match &mut self.nodes[node.0].kind {
            Kind::Host { role, .. } => f(role.engine(), now),
            Kind::Router { .. } => {}
        }
        self.after(node);
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.events[s] = Some(ev);
                s
            }
            None => {
                self.events.push(Some(ev));
                self.events.len() - 1
            }
        };
        self.queue.push(queue_key(at, self.next_seq), slot);
    }

    /// Runs until nothing is left before `until`; time ends at `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some((key, slot)) = self.queue.pop_until(queue_key(until, u64::MAX)) {
            self.now = self.now.max(due(key));
            let ev = self.events[slot].take();
            self.free.push(slot);
            if let Some(ev) = ev {
                self.dispatch(ev);
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Arrive {
                to,
                link,
                src_mac,
                bytes,
            } => {
                for port in to {
                    self.arrive(port, link, src_mac, &bytes);
                }
            }
            Ev::Wake(node) => {
                let n = &mut self.nodes[node.0];
                if n.queued == Some(self.now) {
                    n.queued = None;
                }
                match n.wake {
                    Some(w) if w > self.now && n.queued.is_none() => {
                        n.queued = Some(w);
                        self.schedule(w, Ev::Wake(node));
                    }
                    _ => {}
                }
                if self.nodes[node.0].wake == Some(self.now) {
                    self.nodes[node.0].wake = None;
                    let now = self.now;
                    match &mut self.nodes[node.0].kind {
                        Kind::Host { role, .. } => role.engine().handle_timeout(now),
                        Kind::Router { router, .. } => router.handle_timeout(now),
                    }
                    self.after(node);
                }
            }
            Ev::Flow(i) => self.flow_tick(i),
            Ev::Ping {
                node,
                src,
                dst,
                interval,
                until,
            } => {
                let seq = u16::try_from(self.now.total_micros() / 1000 % 65536).unwrap_or(0);
                let mut body = vec![0, 1];
                body.extend_from_slice(&seq.to_be_bytes());
                body.extend_from_slice(&self.now.total_micros().to_be_bytes());
                let icmp = Icmpv6Repr {
                    msg_type: ECHO_REQUEST,
                    code: 0,
                    body,
                };
                let p = PacketRepr::ipv6(src, dst, vec![], UpperRepr::Icmpv6(icmp));
                let bytes = p.to_bytes(&self.cp);
                self.send_from_stack(node, &bytes);
                if self.now + interval <= until {
                    let at = self.now + interval;
                    self.schedule(
                        at,
                        Ev::Ping {
                            node,
                            src,
                            dst,
                            interval,
                            until,
                        },
                    );
                }
            }
            Ev::Move { port, to } => self.do_move(port, to),
            Ev::SetLink { link, up } => {
                self.links[link.0].model.up = up;
                self.trace_line(None, Traced::Link { link, up });
            }
        }
    }

    fn do_move(&mut self, port: Port, to: Option<LinkId>) {
        let Kind::Host { ifaces, .. } = &self.nodes[port.node.0].kind else {
            return;
        };
        let from = ifaces.get(usize::from(port.iface)).copied().flatten();
        if from.is_none() && to.is_none() {
            return;
        }
        if let Some(l) = from {
            self.links[l.0].detach(port);
            if let Kind::Host { ifaces, .. } = &mut self.nodes[port.node.0].kind {
                ifaces[usize::from(port.iface)] = None;
            }
            self.command(port.node, Command::LinkDown(port.iface));
        }
        let iface = port.iface;
        self.trace_line(Some(port.node), Traced::Moved { iface, to });
        if let Some(l) = to {
            self.link_ups.push((self.now, port, l));
            self.attach(port, l);
        }
    }

    /// Puts a host's interface on `link` and tells its engine (carrier up).
    fn attach(&mut self, port: Port, link: LinkId) {
        if let Kind::Host { ifaces, .. } = &mut self.nodes[port.node.0].kind {
            let i = usize::from(port.iface);
            if ifaces.len() <= i {
                ifaces.resize(i + 1, None);
            }
            ifaces[i] = Some(link);
        }
        self.links[link.0].attach(port);
        self.command(
            port.node,
            Command::LinkUp {
                iface: port.iface,
                mac: port.mac(),
            },
        );
    }

    fn flow_tick(&mut self, i: usize) {
        let Some((flow, seq)) = self.flows.get(i).copied() else {
            return;
        };
        let id = u32::try_from(i).unwrap_or(0);
        let payload = flow_payload(id, seq, self.now.total_micros());
        let udp = UdpRepr {
            src_port: FLOW_PORT,
            dst_port: FLOW_PORT,
        };
        let p = PacketRepr::ipv6(
            flow.src,
            flow.dst,
            vec![],
            UpperRepr::Udp(udp, UdpPayload::Raw(payload)),
        );
        let bytes = p.to_bytes(&self.cp);
        self.flows[i].1 += 1;
        self.send_from_stack(flow.from, &bytes);
        let next = self.now + flow.interval;
        if next < flow.until {
            self.schedule(next, Ev::Flow(i));
        }
    }

    /// Drains what a node produced and re-arms its timer.
    fn after(&mut self, node: NodeId) {
        self.memberships(node);
        loop {
            let (tx, ev) = match &mut self.nodes[node.0].kind {
                Kind::Host { role, .. } => {
                    let e = role.engine();
                    (e.poll_transmit(), e.poll_event())
                }
                Kind::Router { router, .. } => (router.poll_transmit(), None),
            };
            if tx.is_none() && ev.is_none() {
                break;
            }
            if let Some(t) = tx {
                self.node_transmit(node, t);
            }
            match ev {
                Some(Event::Ike(IkeEvent::KeyLog { table, row })) => self.keylog.push((table, row)),
                Some(e) => self.trace_line(Some(node), Traced::Event(e)),
                None => {}
            }
        }
        let next = match &self.nodes[node.0].kind {
            Kind::Host { role, .. } => role.engine_ref().poll_timeout(),
            Kind::Router { router, .. } => router.poll_timeout(),
        };
        let n = &mut self.nodes[node.0];
        if next != n.wake {
            n.wake = next.map(|t| t.max(self.now));
            if let Some(at) = n.wake.filter(|at| n.queued.is_none_or(|q| q > *at)) {
                n.queued = Some(at);
                self.schedule(at, Ev::Wake(node));
            }
        }
    }

    /// Hands the groups `node` joined and left to its links' filters.
    fn memberships(&mut self, node: NodeId) {
        loop {
            let kind = &mut self.nodes[node.0].kind;
            let m = match kind {
                Kind::Host { role, .. } => role.engine().poll_membership(),
                Kind::Router { router, .. } => router.poll_membership(),
            };
            let Some((iface, m)) = m else { break };
            let (group, join) = match m {
                Membership::Join(g) => (g, true),
                Membership::Leave(g) => (g, false),
            };
            if let Some(l) = kind.link_of(iface) {
                let port = Port { node, iface };
                self.links[l.0].membership(port, MacAddr::ipv6_multicast(group), join);
            }
        }
    }

    fn trace_line(&mut self, node: Option<NodeId>, what: Traced) {
        self.trace.push((self.now, node, what));
    }

    /// What happened so far, in order: the nodes' events, their moves and
    /// restarts, and the links going up or down (node "sim").
    pub fn trace(&self) -> Vec<TraceLine> {
        let link = |l: &LinkId| &self.links[l.0].name;
        self.trace
            .iter()
            .map(|(at, node, what)| TraceLine {
                at: *at,
                node: node.map_or("sim", |n| &self.nodes[n.0].name).to_string(),
                what: match what {
                    Traced::Event(e) => e.to_string(),
                    Traced::Moved { iface, to: Some(l) } => {
                        format!("link {iface} moves to {}", link(l))
                    }
                    Traced::Moved { iface, to: None } => format!("link {iface} leaves its link"),
                    Traced::Restarted => "restarts".to_string(),
                    Traced::Link { link: l, up } => {
                        format!("link {} {}", link(l), if *up { "up" } else { "down" })
                    }
                },
            })
            .collect()
    }

    fn node_transmit(&mut self, node: NodeId, t: Transmit) {
        match (t.iface, t.dst_mac) {
            (Iface::Stack, _) => self.stack_receive(node, &t.bytes),
            (Iface::Link(i), Some(dst)) => {
                if let Some(l) = self.nodes[node.0].kind.link_of(i) {
                    let port = Port { node, iface: i };
                    self.transmit(Some(port), l, dst, t.bytes);
                }
            }
            (Iface::Link(_), None) => {}
        }
    }

    /// Puts a frame on a link (see [`Link::carry`]) and schedules its
    /// arrival at the interfaces that get it.
    fn transmit(&mut self, from: Option<Port>, link: LinkId, dst: MacAddr, bytes: Vec<u8>) {
        let now = self.now;
        let draws = Draws::take(&mut self.rng);
        let carried = self.links[link.0].carry(now, from, dst, &bytes, draws);
        let Some((at, to)) = carried else {
            return;
        };
        let src_mac = from.map_or(INJECTOR_MAC, Port::mac);
        self.schedule(
            at,
            Ev::Arrive {
                to,
                link,
                src_mac,
                bytes,
            },
        );
    }

    fn arrive(&mut self, port: Port, link: LinkId, src_mac: MacAddr, bytes: &[u8]) {
        let node = port.node;
        // An interface that moved on no longer hears its old link.
        if self.nodes[node.0].kind.link_of(port.iface) != Some(link) {
            return;
        }
        let before = self.delivered(node);
        let now = self.now;
        match &mut self.nodes[node.0].kind {
            Kind::Router { router, .. } => router.handle_packet(now, port.iface, src_mac, bytes),
            Kind::Host { role, .. } => {
                role.engine()
                    .handle_packet(now, Iface::Link(port.iface), Some(src_mac), bytes);
            }
        }
        let after = self.delivered(node);
        let path = if after.0 > before.0 {
            Path::RouteOptimised
        } else if after.1 > before.1 {
            Path::Tunnelled
        } else {
            Path::Direct
        };
        self.last_path = Some((path, link));
        self.after(node);
        self.last_path = None;
    }

    fn delivered(&self, node: NodeId) -> (u64, u64) {
        self.engine(node).map_or((0, 0), |e| {
            let s = e.stats();
            (s.delivered_route_optimised, s.delivered_tunnelled)
        })
    }

    /// The router `node`, if it is one.
    pub fn router(&self, node: NodeId) -> Option<&Router> {
        match &self.nodes[node.0].kind {
            Kind::Router { router, .. } => Some(router),
            Kind::Host { .. } => None,
        }
    }

    /// What a host's stack does with a packet: record traffic-generator
    /// packets, answer and record pings.
    fn stack_receive(&mut self, node: NodeId, bytes: &[u8]) {
        let (path, link) = match self.last_path.take() {
            Some((p, l)) => (p, Some(l)),
            None => (Path::Direct, None),
        };
        let Ok(p) = PacketRepr::parse(bytes, &self.cp) else {
            return;
        };
        let IpRepr::V6 { header, .. } = &p.ip else {
            return;
        };
        match &p.upper {
            UpperRepr::Udp(_, UdpPayload::Raw(d)) if parse_flow(d).is_some() => {
                let (flow, seq, sent) = parse_flow(d).unwrap_or_default();
                self.arrivals.push(Arrival {
                    flow,
                    seq,
                    sent: Instant::from_micros(sent),
                    at: self.now,
                    path,
                    link,
                });
            }
            UpperRepr::Icmpv6(i) if i.msg_type == ECHO_REQUEST => {
                let reply = PacketRepr::ipv6(
                    header.dst,
                    header.src,
                    vec![],
                    UpperRepr::Icmpv6(Icmpv6Repr {
                        msg_type: ECHO_REPLY,
                        code: 0,
                        body: i.body.clone(),
                    }),
                );
                let b = reply.to_bytes(&self.cp);
                self.send_from_stack(node, &b);
            }
            UpperRepr::Icmpv6(i) if i.msg_type == ECHO_REPLY && i.body.len() == 12 => {
                let sent = u64::from_be_bytes(i.body[4..12].try_into().unwrap_or([0; 8]));
                let sent = Instant::from_micros(sent);
                self.pings.push(PingResult {
                    node,
                    sent,
                    rtt: self.now.saturating_duration_since(sent),
                    path,
                });
            }
            _ => {}
        }
    }

    /// Writes a Wireshark configuration directory with the run's keys:
    /// `WIRESHARK_CONFIG_DIR=dir wireshark FILE` opens a capture decrypted.
    pub fn write_keylog(&self, dir: &std::path::Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::from(e).in_file(dir))?;
        let rows = |t: KeyTable| -> Vec<String> {
            let mut v: Vec<String> = self
                .keylog
                .iter()
                .filter(|(x, _)| *x == t)
                .map(|(_, r)| r.clone())
                .collect();
            // Both ends log the same SA.
            v.sort();
            v.dedup();
            v
        };
        for (name, text) in keylog::config_files(&rows(KeyTable::Ikev2), &rows(KeyTable::Esp)) {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::from(e).in_file(&p))?;
        }
        Ok(())
    }

    /// Writes one pcap per captured link into `dir`, named
    /// `<prefix><link>.pcap`.
    pub fn write_pcaps(&self, dir: &std::path::Path, prefix: &str) -> Result<Vec<PathBuf>, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::from(e).in_file(dir))?;
        let mut out = vec![];
        for l in &self.links {
            let Some(c) = &l.capture else { continue };
            let path = dir.join(format!("{prefix}{}.pcap", l.name));
            let write = || -> Result<(), Error> {
                let mut w = PcapWriter::new(io::BufWriter::new(std::fs::File::create(&path)?))?;
                for (t, b) in c {
                    w.write_packet(t.total_micros(), b)?;
                }
                io::Write::flush(&mut w.into_inner())?;
                Ok(())
            };
            write().map_err(|e| e.in_file(&path))?;
            out.push(path);
        }
        Ok(out)
    }
}
