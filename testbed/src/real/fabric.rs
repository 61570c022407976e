//! The real router's links and its router, sans-IO: what `testbed router`
//! does with a frame, given the time. The process ([`super::router`])
//! only moves frames between this and its AF_PACKET sockets, reads the
//! clock and writes the pcaps.
//!
//! Each link is an Ethernet segment of ports with the simulator's link
//! model ([`LinkModel::fate`], one pair of [`Draws`] per frame from one
//! seeded RNG, as in the simulator): a frame put on it (by a port, or by
//! the router) is counted, captured, maybe dropped (down, too big, lost),
//! and otherwise delivered after the delay and jitter to
//! - the router, if it is for the router's MAC on that link or a group MAC;
//! - the other ports of the link: a learning switch sends a unicast frame
//!   to the port its destination MAC last came from, floods it when that
//!   is unknown, and floods multicast and broadcast.
//!
//! Which ports and whether the router get it is decided when the frame is
//! put on the link (as the simulator decides it); a port whose carrier is
//! down when the frame arrives gets nothing (counted as `port_down`).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::Ipv6Addr;

use common::node::{Iface, Transmit};
use common::time::{earlier, Instant};
use common::wire::MacAddr;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::config::RouterConfig;
use crate::router::{Router, RouterLink, RouterStats};
use crate::sim::{Draws, Fate, LinkModel, LinkStats};

/// Length of an Ethernet header (no VLAN tag).
pub const ETHERNET_HEADER: usize = 14;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Counters of one link: the link model's and the switch's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// What [`LinkModel::fate`] counts, and `unreachable`: nobody on the
    /// link to give the frame to.
    pub link: LinkStats,
    /// Deliveries to a port whose carrier was down.
    pub port_down: u64,
    /// Sends the kernel refused (the process reports them).
    pub send_errors: u64,
    /// Frames the kernel dropped at a full receive queue of one of the
    /// link's ports (the process reports them).
    pub queue_full: u64,
    /// Received frames that were not IPv6 over Ethernet, or cut short.
    pub malformed: u64,
}

/// One port as the switch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub link: usize,
    pub mac: MacAddr,
    /// Administratively up with carrier: it gets frames.
    pub usable: bool,
}

struct Segment {
    name: String,
    prefix: Ipv6Addr,
    model: LinkModel,
    /// Its ports (indices into `Fabric::ports`).
    ports: Vec<usize>,
    /// The router's MAC here: its first port's.
    mac: MacAddr,
    /// Source MAC → the port it last came in on.
    learned: HashMap<MacAddr, usize>,
    port_down: u64,
    send_errors: u64,
    queue_full: u64,
    malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Port(usize),
    Router,
}

/// A frame in flight on a link.
struct Pending {
    at: Instant,
    seq: u64,
    link: usize,
    frame: Vec<u8>,
    to: Vec<Target>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Earliest first out of a max-heap; ties in the order they were sent.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The links and the router. See the module doc.
pub struct Fabric {
    segments: Vec<Segment>,
    ports: Vec<PortInfo>,
    router: Router,
    rng: ChaCha20Rng,
    queue: BinaryHeap<Pending>,
    next_seq: u64,
    out: VecDeque<(usize, Vec<u8>)>,
    capture: bool,
    captured: VecDeque<(usize, Instant, Vec<u8>)>,
}

/// The IPv6 packet of an Ethernet frame, without Ethernet padding; None
/// if it is not IPv6 over Ethernet.
fn ipv6_of(frame: &[u8]) -> Option<&[u8]> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETHERNET_HEADER..)?;
    if ethertype != ETHERTYPE_IPV6 || ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    // Payload length 0 with more bytes is a jumbogram's: keep them all.
    if payload == 0 {
        return Some(ip);
    }
    ip.get(..40 + payload)
}

fn mac_at(frame: &[u8], at: usize) -> MacAddr {
    let mut m = [0; 6];
    m.copy_from_slice(&frame[at..at + 6]);
    MacAddr(m)
}

impl Fabric {
    /// The links of `config`, their ports having the MACs `port_macs` (in
    /// the file's order: link by link, port by port). `capture`: record
    /// every frame put on a link, for [`Fabric::poll_capture`].
    pub fn new(
        now: Instant,
        config: &RouterConfig,
        port_macs: &[MacAddr],
        capture: bool,
    ) -> Fabric {
        let mut ports = vec![];
        let mut segments = vec![];
        for (i, l) in config.links.iter().enumerate() {
            let first = ports.len();
            for name in &l.ports {
                ports.push(PortInfo {
                    name: name.clone(),
                    link: i,
                    mac: port_macs
                        .get(ports.len())
                        .copied()
                        .unwrap_or(MacAddr([0; 6])),
                    usable: true,
                });
            }
            let mut model = LinkModel::new(l.params);
            model.up = l.up;
            segments.push(Segment {
                name: l.name.clone(),
                prefix: l.prefix,
                model,
                ports: (first..ports.len()).collect(),
                mac: ports.get(first).map_or(MacAddr([0; 6]), |p| p.mac),
                learned: HashMap::new(),
                port_down: 0,
                send_errors: 0,
                queue_full: 0,
                malformed: 0,
            });
        }
        let links: Vec<RouterLink> = segments
            .iter()
            .map(|s| RouterLink {
                prefix: s.prefix,
                mac: s.mac,
            })
            .collect();
        let router = Router::new(now, &links, config.ra_interval, config.seed);
        Fabric {
            segments,
            ports,
            router,
            rng: ChaCha20Rng::seed_from_u64(config.seed),
            queue: BinaryHeap::new(),
            next_seq: 0,
            out: VecDeque::new(),
            capture,
            captured: VecDeque::new(),
        }
    }

    pub fn ports(&self) -> &[PortInfo] {
        &self.ports
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn router_stats(&self) -> RouterStats {
        *self.router.stats()
    }

    pub fn link_count(&self) -> usize {
        self.segments.len()
    }

    /// The link called `name`.
    pub fn link_index(&self, name: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.name == name)
    }

    pub fn link_name(&self, link: usize) -> &str {
        &self.segments[link].name
    }

    pub fn link_prefix(&self, link: usize) -> Ipv6Addr {
        self.segments[link].prefix
    }

    pub fn link_up(&self, link: usize) -> bool {
        self.segments[link].model.up
    }

    /// The router's MAC on `link`.
    pub fn link_mac(&self, link: usize) -> MacAddr {
        self.segments[link].mac
    }

    /// The ports of `link`.
    pub fn link_ports(&self, link: usize) -> impl Iterator<Item = &PortInfo> {
        self.segments[link].ports.iter().map(|&p| &self.ports[p])
    }

    pub fn link_stats(&self, link: usize) -> SegmentStats {
        let s = &self.segments[link];
        SegmentStats {
            link: s.model.stats,
            port_down: s.port_down,
            send_errors: s.send_errors,
            queue_full: s.queue_full,
            malformed: s.malformed,
        }
    }

    /// Up or down, like `Sim::set_link_at`: a down link drops everything
    /// put on it (counted as `down`); frames already in flight arrive.
    pub fn set_link(&mut self, link: usize, up: bool) {
        self.segments[link].model.up = up;
    }

    /// A port's carrier (and administrative state) changed. A port that
    /// goes down is forgotten by the switch: the MACs it taught are
    /// flooded again until they are heard from elsewhere.
    pub fn set_port_usable(&mut self, port: usize, usable: bool) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        p.usable = usable;
        if !usable {
            self.segments[p.link].learned.retain(|_, q| *q != port);
        }
    }

    /// The kernel refused a frame [`Fabric::poll_send`] gave for `port`.
    pub fn send_failed(&mut self, port: usize) {
        if let Some(p) = self.ports.get(port) {
            self.segments[p.link].send_errors += 1;
        }
    }

    /// The kernel dropped `n` frames at `port`'s full receive queue.
    pub fn queue_full(&mut self, port: usize, n: u64) {
        if let Some(p) = self.ports.get(port) {
            self.segments[p.link].queue_full += n;
        }
    }

    /// A frame (Ethernet header first) that arrived on `port` at `now`.
    pub fn handle_frame(&mut self, now: Instant, port: usize, frame: &[u8]) {
        let Some(link) = self.ports.get(port).map(|p| p.link) else {
            return;
        };
        let Some(ip) = ipv6_of(frame) else {
            self.segments[link].malformed += 1;
            return;
        };
        let (dst, src) = (mac_at(frame, 0), mac_at(frame, 6));
        let seg = &mut self.segments[link];
        if !src.is_multicast() && src != seg.mac {
            seg.learned.insert(src, port);
        }
        let mut f = frame[..ETHERNET_HEADER].to_vec();
        f.extend_from_slice(ip);
        self.carry(now, link, Some(port), dst, f);
        self.handle_timeout(now);
    }

    /// Delivers what is due and runs the router's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            if self.queue.peek().is_some_and(|p| p.at <= now) {
                if let Some(p) = self.queue.pop() {
                    self.deliver(now, p);
                }
                continue;
            }
            if self.router.poll_timeout().is_some_and(|t| t <= now) {
                self.router.handle_timeout(now);
                self.pump_router(now);
                continue;
            }
            return;
        }
    }

    /// The next time [`Fabric::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.queue.peek().map(|p| p.at);
        earlier(next, self.router.poll_timeout())
    }

    /// A frame to send out of a port: (port, frame).
    pub fn poll_send(&mut self) -> Option<(usize, Vec<u8>)> {
        self.out.pop_front()
    }

    /// A frame put on a link, for its pcap: (link, time, IPv6 packet).
    pub fn poll_capture(&mut self) -> Option<(usize, Instant, Vec<u8>)> {
        self.captured.pop_front()
    }

    fn deliver(&mut self, now: Instant, p: Pending) {
        for t in &p.to {
            match *t {
                Target::Port(q) => {
                    if self.ports[q].usable {
                        self.out.push_back((q, p.frame.clone()));
                    } else {
                        self.segments[p.link].port_down += 1;
                    }
                }
                Target::Router => {
                    let iface = u8::try_from(p.link).unwrap_or(u8::MAX);
                    let mut src = [0; 6];
                    src.copy_from_slice(&p.frame[6..12]);
                    self.router.handle_packet(
                        now,
                        iface,
                        MacAddr(src),
                        &p.frame[ETHERNET_HEADER..],
                    );
                    self.pump_router(now);
                }
            }
        }
    }

    /// Puts what the router sends on its links.
    fn pump_router(&mut self, now: Instant) {
        while let Some(t) = self.router.poll_transmit() {
            let Transmit {
                iface: Iface::Link(i),
                dst_mac: Some(dst),
                bytes,
            } = t
            else {
                continue;
            };
            let link = usize::from(i);
            let Some(seg) = self.segments.get(link) else {
                continue;
            };
            let mut f = Vec::with_capacity(ETHERNET_HEADER + bytes.len());
            f.extend_from_slice(&dst.0);
            f.extend_from_slice(&seg.mac.0);
            f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            f.extend_from_slice(&bytes);
            self.carry(now, link, None, dst, f);
        }
    }

    /// A frame put on `link` by port `from` (None: the router): its fate,
    /// then who gets it.
    fn carry(
        &mut self,
        now: Instant,
        link: usize,
        from: Option<usize>,
        dst: MacAddr,
        frame: Vec<u8>,
    ) {
        let draws = Draws::take(&mut self.rng);
        let (capture, captured) = (self.capture, &mut self.captured);
        let seg = &mut self.segments[link];
        let fate = seg
            .model
            .fate(now, &frame[ETHERNET_HEADER..], draws, |at, b| {
                if capture {
                    captured.push_back((link, at, b.to_vec()));
                }
            });
        let Fate::Arrives(at) = fate else {
            return;
        };
        let others = |seg: &Segment| -> Vec<Target> {
            seg.ports
                .iter()
                .filter(|&&p| Some(p) != from)
                .map(|&p| Target::Port(p))
                .collect()
        };
        let to = if dst.is_multicast() {
            let mut to = others(seg);
            if from.is_some() {
                to.push(Target::Router);
            }
            to
        } else if dst == seg.mac && from.is_some() {
            vec![Target::Router]
        } else {
            match seg.learned.get(&dst) {
                Some(&p) if Some(p) == from => vec![],
                Some(&p) => vec![Target::Port(p)],
                None => others(seg),
            }
        };
        if to.is_empty() {
            seg.model.stats.unreachable += 1;
            return;
        }
        self.next_seq += 1;
        self.queue.push(Pending {
            at,
            seq: self.next_seq,
            link,
            frame,
            to,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::config::parse;
    use common::nd::link_local;
    use common::wire::icmpv6::{Icmpv6Repr, ECHO_REQUEST};
    use common::wire::{CodePoints, PacketRepr, UpperRepr};

    const CONFIG: &str = "ra_interval_ms: 1000
links:
  - { name: a, prefix: \"2001:db8:a::/64\", delay_ms: 20, ports: [pa0, pa1] }
  - { name: b, prefix: \"2001:db8:b::/64\", delay_ms: 5, ports: [pb0] }
";
    const H1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);
    const H2: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x12]);
    const PORTS: [MacAddr; 3] = [
        MacAddr([0x02, 0, 0, 0, 0xa0, 0]),
        MacAddr([0x02, 0, 0, 0, 0xa1, 0]),
        MacAddr([0x02, 0, 0, 0, 0xb0, 0]),
    ];

    fn fabric() -> Fabric {
        let mut f = Fabric::new(Instant::ZERO, &parse(CONFIG).unwrap(), &PORTS, true);
        // The first RAs go out at once: let them arrive, take them and
        // their captures.
        f.handle_timeout(Instant::ZERO);
        f.handle_timeout(Instant::from_millis(20));
        while f.poll_capture().is_some() {}
        while f.poll_send().is_some() {}
        f
    }

    fn frame(dst: MacAddr, src: MacAddr, ip: &[u8]) -> Vec<u8> {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    fn echo(src: &str, dst: &str) -> Vec<u8> {
        let icmp = Icmpv6Repr {
            msg_type: ECHO_REQUEST,
            code: 0,
            body: vec![0, 1, 0, 1],
        };
        PacketRepr::ipv6(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            vec![],
            UpperRepr::Icmpv6(icmp),
        )
        .to_bytes(&CodePoints::default())
    }

    fn sends(f: &mut Fabric) -> Vec<(usize, Vec<u8>)> {
        std::iter::from_fn(|| f.poll_send()).collect()
    }

    #[test]
    fn the_router_advertises_on_every_port_through_the_link_model() {
        let mut f = Fabric::new(Instant::ZERO, &parse(CONFIG).unwrap(), &PORTS, true);
        f.handle_timeout(Instant::ZERO);
        assert_eq!(f.poll_send(), None, "nothing before the delay");
        assert_eq!(f.poll_timeout(), Some(Instant::from_millis(5)));
        f.handle_timeout(Instant::from_millis(5));
        let b = sends(&mut f);
        assert_eq!(b.iter().map(|s| s.0).collect::<Vec<_>>(), [2]);
        assert_eq!(mac_at(&b[0].1, 0), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(mac_at(&b[0].1, 6), PORTS[2]);
        f.handle_timeout(Instant::from_millis(20));
        assert_eq!(
            sends(&mut f).iter().map(|s| s.0).collect::<Vec<_>>(),
            [0, 1]
        );
        let captured: Vec<usize> = std::iter::from_fn(|| f.poll_capture())
            .map(|c| c.0)
            .collect();
        assert_eq!(captured, [0, 1]);
        assert_eq!(f.link_stats(0).link.sent, 1);
    }

    #[test]
    fn a_learning_switch_with_the_router_behind_its_first_port() {
        let mut f = fabric();
        let ms = Instant::from_millis;
        let to_ports = |f: &mut Fabric| sends(f).iter().map(|s| s.0).collect::<Vec<_>>();
        // H1 on port 1 pings an off-link address through the router: only
        // the router gets it, 20 ms later.
        let ping = echo("2001:db8:a::11", "2001:db8:b::12");
        f.handle_frame(ms(100), 1, &frame(PORTS[0], H1, &ping));
        assert_eq!(f.poll_timeout(), Some(ms(120)));
        f.handle_timeout(ms(120));
        // The router does not know H2 yet: a Neighbor Solicitation goes on
        // link b (5 ms), to the solicited-node group.
        assert_eq!(sends(&mut f), vec![]);
        f.handle_timeout(ms(125));
        let out = sends(&mut f);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].0, mac_at(&out[0].1, 0)),
            (2, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x12]))
        );
        // H1 is learnt on port 1: a frame for it from port 0 goes there only.
        f.handle_frame(ms(200), 0, &frame(H1, H2, &ping));
        f.handle_timeout(ms(220));
        assert_eq!(to_ports(&mut f), [1]);
        // Unknown unicast is flooded to the other ports, not the router.
        let stranger = MacAddr([0x02, 9, 9, 9, 9, 9]);
        f.handle_frame(ms(300), 1, &frame(stranger, H1, &ping));
        f.handle_timeout(ms(320));
        assert_eq!(to_ports(&mut f), [0]);
        // A port that goes down gets nothing (counted), and what it taught
        // is forgotten.
        f.set_port_usable(1, false);
        f.handle_frame(ms(400), 0, &frame(H1, H2, &ping));
        f.handle_timeout(ms(420));
        assert_eq!(sends(&mut f), vec![]);
        assert_eq!(f.link_stats(0).port_down, 1);
        // Link b has one port: a unicast frame from it for anybody but the
        // router has nowhere to go.
        f.handle_frame(ms(500), 2, &frame(stranger, H2, &ping));
        assert_eq!(f.link_stats(1).link.unreachable, 1);
        assert_eq!(f.router_stats().malformed, 0);
    }

    #[test]
    fn a_ports_kernel_drops_count_on_its_link() {
        let mut f = fabric();
        f.queue_full(0, 3);
        f.queue_full(1, 4);
        f.queue_full(2, 5);
        f.queue_full(9, 6);
        f.send_failed(2);
        let (a, b) = (f.link_stats(0), f.link_stats(1));
        assert_eq!((a.queue_full, a.send_errors), (7, 0));
        assert_eq!((b.queue_full, b.send_errors), (5, 1));
    }

    #[test]
    fn a_down_link_drops_and_counts() {
        let mut f = fabric();
        f.set_link(0, false);
        let t = Instant::from_millis(100);
        f.handle_frame(
            t,
            1,
            &frame(PORTS[0], H1, &echo("2001:db8:a::11", "2001:db8:b::12")),
        );
        assert_eq!(
            f.poll_timeout(),
            Some(Instant::from_secs(1)),
            "only the next RA"
        );
        let s = f.link_stats(0).link;
        assert_eq!((s.sent, s.down), (2, 1));
        assert_eq!(f.poll_capture(), None, "a down link captures nothing");
        f.set_link(0, true);
        f.handle_frame(
            t,
            1,
            &frame(PORTS[0], H1, &echo("2001:db8:a::11", "2001:db8:b::12")),
        );
        assert!(f.poll_capture().is_some());
    }

    #[test]
    fn a_link_configured_down_starts_down() {
        let text = CONFIG.replace("ports: [pb0] }", "ports: [pb0], up: false }");
        let mut f = Fabric::new(Instant::ZERO, &parse(&text).unwrap(), &PORTS, false);
        assert!(f.link_up(0) && !f.link_up(1));
        f.handle_timeout(Instant::ZERO);
        // The RA on link b went nowhere, counted.
        let s = f.link_stats(1).link;
        assert_eq!((s.sent, s.down), (1, 1));
        f.set_link(1, true);
        f.handle_timeout(Instant::from_secs(1));
        assert_eq!(f.link_stats(1).link.down, 1);
        assert_eq!(f.poll_capture(), None, "not capturing");
    }

    #[test]
    fn padding_is_trimmed_and_other_frames_counted() {
        let mut f = fabric();
        let mut padded = frame(PORTS[0], H1, &echo("2001:db8:a::11", "2001:db8:b::12"));
        let len = padded.len();
        padded.extend_from_slice(&[0; 10]);
        f.handle_frame(Instant::ZERO, 1, &padded);
        let (_, _, ip) = f.poll_capture().unwrap();
        assert_eq!(ip.len(), len - ETHERNET_HEADER);
        f.handle_frame(Instant::ZERO, 1, &padded[..30]);
        let mut arp = padded.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        f.handle_frame(Instant::ZERO, 1, &arp);
        assert_eq!(f.link_stats(0).malformed, 2);
        assert_eq!(f.router().port(0).map(|p| p.0), Some(link_local(PORTS[0])));
    }
}
