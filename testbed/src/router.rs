//! The testbed's IPv6 router, sans-IO: one Neighbor Discovery state per
//! link (answering for its link-local addresses, resolving next hops),
//! periodic and solicited Router Advertisements of each link's /64 with
//! its MAC and the Advertisement Interval option (RFC 6275 §7.3), and
//! forwarding by prefix with the hop limit decremented. The simulator runs
//! it on its links; the real demo runs it on veth ports.
//!
//! Not a general router: no routing protocol, no multicast forwarding,
//! no ICMPv6 errors, no Redirects.

use std::net::Ipv6Addr;

use common::nd::{Dad, Membership, NdConfig, NdEvent, NdIface, Sent, ALL_NODES};
use common::node::{same_prefix64, Iface, Transmit};
use common::time::{Duration, Instant};
use common::wire::nd::{PrefixInfo, RouterAdvert, NEIGHBOR_ADVERTISEMENT, ROUTER_SOLICITATION};
use common::wire::{
    CodePoints, IpProtocol, IpRepr, Ipv6Packet, MacAddr, NdRepr, PacketRepr, UpperRepr,
};

/// RFC 6275 §7.5: a router for mobile nodes may answer solicitations
/// this soon after its last advertisement.
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_millis(30);

/// Neighbour entries a port holds: every host of the simulator's largest
/// links (the scale bench puts 50 000 mobile nodes on each access link),
/// where a host's default of 1 024 would drop their packets.
pub const MAX_NEIGHBORS: usize = 1 << 17;

/// Packets a port holds for a neighbour it is resolving, as a router
/// keeps (Linux: 101): a host's 3 dropped a flow's packet on their way to
/// a new care-of address on real links, while the NS and NA crossed.
pub const QUEUE_PER_NEIGHBOR: usize = 64;

/// One link of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterLink {
    /// The link's /64, advertised for autoconfiguration.
    pub prefix: Ipv6Addr,
    pub mac: MacAddr,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub forwarded: u64,
    /// No link has the destination's prefix, or it is link-local.
    pub no_route: u64,
    pub hop_limit_exceeded: u64,
    /// Next hop did not answer, or its queue was full.
    pub unresolved: u64,
    pub malformed: u64,
}

#[derive(Clone)]
struct Port {
    link: RouterLink,
    nd: NdIface,
    last_ra: Option<Instant>,
    /// A solicited RA held back by the rate limit.
    solicited: Option<Instant>,
}

#[derive(Clone)]
pub struct Router {
    ports: Vec<Port>,
    ra_interval: Duration,
    next_ra: Instant,
    stats: RouterStats,
}

impl Router {
    /// A router on `links` (interface `i` is `links[i]`) that advertises
    /// every `ra_interval`, starting now.
    pub fn new(now: Instant, links: &[RouterLink], ra_interval: Duration, seed: u64) -> Router {
        let cfg = NdConfig {
            router: true,
            max_neighbors: MAX_NEIGHBORS,
            queue_per_neighbor: QUEUE_PER_NEIGHBOR,
            ..NdConfig::default()
        };
        let ports = links
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut nd = NdIface::new(now, cfg, l.mac, Dad::Off, seed ^ i as u64);
                nd.add_on_link(l.prefix, 64);
                Port {
                    link: *l,
                    nd,
                    last_ra: None,
                    solicited: None,
                }
            })
            .collect();
        Router {
            ports,
            ra_interval,
            next_ra: now,
            stats: RouterStats::default(),
        }
    }

    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// The link-local address and MAC of interface `iface`.
    pub fn port(&self, iface: u8) -> Option<(Ipv6Addr, MacAddr)> {
        self.ports
            .get(usize::from(iface))
            .map(|p| (p.nd.link_local(), p.link.mac))
    }

    pub fn interface(&self, iface: u8) -> Option<&NdIface> {
        self.ports.get(usize::from(iface)).map(|p| &p.nd)
    }

    /// An RA on port `i`: to all nodes, or to one soliciting host.
    fn advertise(&mut self, now: Instant, i: usize, to: Option<(Ipv6Addr, MacAddr)>) {
        let interval = u32::try_from(self.ra_interval.as_millis()).unwrap_or(u32::MAX);
        let Some(p) = self.ports.get_mut(i) else {
            return;
        };
        let (dst, mac) = match to {
            Some(host) => host,
            None => {
                p.last_ra = Some(now);
                p.solicited = None;
                (ALL_NODES, MacAddr::ipv6_multicast(ALL_NODES))
            }
        };
        p.nd.advertise(
            dst,
            mac,
            RouterAdvert {
                hop_limit: 64,
                flags: 0,
                router_lifetime: 1800,
                reachable_time: 0,
                retrans_timer: 0,
                source_ll: None,
                mtu: None,
                prefixes: vec![PrefixInfo::slaac(p.link.prefix)],
                advertisement_interval: Some(interval),
            },
        );
    }

    /// A packet that arrived on `iface` in a frame from `src_mac`.
    pub fn handle_packet(&mut self, now: Instant, iface: u8, src_mac: MacAddr, bytes: &[u8]) {
        let i = usize::from(iface);
        let Ok(p) = Ipv6Packet::new_checked(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let nd = p.next_header() == IpProtocol::Icmpv6
            && p.payload()
                .first()
                .is_some_and(|t| (ROUTER_SOLICITATION..=NEIGHBOR_ADVERTISEMENT).contains(t));
        if nd {
            self.neighbor_discovery(now, i, src_mac, bytes);
            return;
        }
        let dst = p.dst_addr();
        if dst.is_multicast() || dst.segments()[0] & 0xffc0 == 0xfe80 {
            return;
        }
        if p.hop_limit() <= 1 {
            self.stats.hop_limit_exceeded += 1;
            return;
        }
        let Some(out) = self
            .ports
            .iter()
            .position(|q| same_prefix64(q.link.prefix, dst))
        else {
            self.stats.no_route += 1;
            return;
        };
        let mut b = bytes.to_vec();
        b[7] -= 1;
        let port = &mut self.ports[out];
        let src = port.nd.link_local();
        if port.nd.send(now, dst, src, b) == Sent::Dropped {
            self.stats.unresolved += 1;
        } else {
            self.stats.forwarded += 1;
        }
    }

    fn neighbor_discovery(&mut self, now: Instant, i: usize, src_mac: MacAddr, bytes: &[u8]) {
        let Ok(repr) = PacketRepr::parse(bytes, &CodePoints::default()) else {
            self.stats.malformed += 1;
            return;
        };
        let (IpRepr::V6 { header, .. }, UpperRepr::Icmpv6(icmp)) = (&repr.ip, &repr.upper) else {
            return;
        };
        let Ok(Some(msg)) = NdRepr::parse(icmp) else {
            self.stats.malformed += 1;
            return;
        };
        if let Some(p) = self.ports.get_mut(i) {
            // Invalid messages are counted by the interface itself.
            let _ =
                p.nd.handle(now, header.src, header.dst, header.hop_limit, &msg);
        }
        self.events(now, Some((header.src, src_mac)));
    }

    /// What the ports' ND reported; `sender` sent the packet just handled.
    fn events(&mut self, now: Instant, sender: Option<(Ipv6Addr, MacAddr)>) {
        for i in 0..self.ports.len() {
            while let Some(e) = self.ports[i].nd.poll_event() {
                match e {
                    // RFC 4861 §6.2.6: a host with an address gets its own
                    // RA, at once, at the frame's source: from an
                    // optimistic address its RS carries no link-layer
                    // option (RFC 4429 §3.3), and resolving it first would
                    // cost a round trip. The neighbour cache is left alone
                    // (the address may be a duplicate). Every other node of
                    // the link would only process it again.
                    NdEvent::RouterSolicited { from } if !from.is_unspecified() => {
                        let to = sender.filter(|(a, _)| *a == from);
                        if to.is_some() {
                            self.advertise(now, i, to);
                        }
                    }
                    // From ::, to all nodes at once, unless an RA just
                    // went; then as soon as the rate limit allows.
                    NdEvent::RouterSolicited { .. } => match self.ports[i].last_ra {
                        Some(t) if now < t + MIN_DELAY_BETWEEN_RAS => {
                            self.ports[i].solicited = Some(t + MIN_DELAY_BETWEEN_RAS);
                        }
                        _ => self.advertise(now, i, None),
                    },
                    NdEvent::NeighborUnreachable { dropped, .. } => {
                        self.stats.unresolved += dropped as u64;
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for p in &mut self.ports {
            p.nd.handle_timeout(now);
        }
        let periodic = now >= self.next_ra;
        if periodic {
            self.next_ra = now + self.ra_interval;
        }
        for i in 0..self.ports.len() {
            if periodic || self.ports[i].solicited.is_some_and(|t| t <= now) {
                self.advertise(now, i, None);
            }
        }
        self.events(now, None);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let nd = self.ports.iter().filter_map(|p| p.nd.poll_timeout());
        let solicited = self.ports.iter().filter_map(|p| p.solicited);
        nd.chain(solicited).chain([self.next_ra]).min()
    }

    /// The next change of a port's multicast groups.
    pub fn poll_membership(&mut self) -> Option<(u8, Membership)> {
        self.ports
            .iter_mut()
            .enumerate()
            .find_map(|(i, p)| p.nd.poll_membership().map(|m| (i as u8, m)))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ports.iter_mut().enumerate().find_map(|(i, p)| {
            p.nd.poll_frame().map(|f| Transmit {
                iface: Iface::Link(i as u8),
                dst_mac: Some(f.dst),
                bytes: f.bytes,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::nd::nd_packet;

    /// Every host of a crowded link keeps its neighbour entry at the
    /// router (the scale bench's 5 000 nodes a link lost their packets at
    /// a host's 1 024).
    #[test]
    fn a_port_holds_the_neighbours_of_a_crowded_link() {
        let link = RouterLink {
            prefix: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        let mut r = Router::new(Instant::ZERO, &[link], Duration::from_secs(1), 1);
        let hosts = 5000u16;
        for h in 0..hosts {
            let [a, b] = h.to_be_bytes();
            let mac = MacAddr([2, 0, 0, 1, a, b]);
            let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, h);
            let rs = NdRepr::RouterSolicit {
                source_ll: Some(mac),
            };
            let bytes = nd_packet(src, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2), &rs)
                .to_bytes(&CodePoints::default());
            r.handle_packet(Instant::ZERO, 0, mac, &bytes);
        }
        let nd = r.interface(0).unwrap();
        assert_eq!(nd.neighbors().count(), usize::from(hosts));
        assert_eq!(nd.stats().cache_full, 0);
    }

    /// RFC 4861 §6.2.6: an RS from an address (optimistic, so without a
    /// link-layer option) is answered at once, to that address at the
    /// frame's source, rate limit or not, and creates no neighbour entry;
    /// one from :: gets the all-nodes RA, rate-limited.
    #[test]
    fn a_soliciting_host_with_an_address_gets_its_own_ra_at_once() {
        let link = RouterLink {
            prefix: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        let mut r = Router::new(Instant::ZERO, &[link], Duration::from_secs(1), 1);
        let cp = CodePoints::default();
        let rs = |src| {
            nd_packet(
                src,
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
                &NdRepr::RouterSolicit { source_ll: None },
            )
            .to_bytes(&cp)
        };
        let sent = |r: &mut Router| -> Vec<(MacAddr, Ipv6Addr)> {
            std::iter::from_fn(|| r.poll_transmit())
                .map(|t| {
                    (
                        t.dst_mac.unwrap(),
                        Ipv6Packet::new_checked(&t.bytes[..]).unwrap().dst_addr(),
                    )
                })
                .collect()
        };
        let t = Instant::from_micros(5_000_000);
        r.handle_timeout(t);
        let all = (MacAddr::ipv6_multicast(ALL_NODES), ALL_NODES);
        assert_eq!(sent(&mut r), [all], "the periodic RA");
        let host = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, 7);
        let mac = MacAddr([2, 0, 0, 1, 0, 7]);
        let soon = t + Duration::from_millis(1);
        r.handle_packet(soon, 0, mac, &rs(host));
        assert_eq!(sent(&mut r), [(mac, host)]);
        assert_eq!(r.interface(0).unwrap().neighbors().count(), 0);
        r.handle_packet(soon, 0, mac, &rs(Ipv6Addr::UNSPECIFIED));
        assert_eq!(sent(&mut r), [], "held back by the rate limit");
        assert_eq!(r.poll_timeout(), Some(t + MIN_DELAY_BETWEEN_RAS));
        r.handle_timeout(t + MIN_DELAY_BETWEEN_RAS);
        assert_eq!(sent(&mut r), [all]);
    }

    /// A burst to a new care-of address waits for its resolution whole
    /// (a host's queue of 3 dropped one on real links).
    #[test]
    fn a_port_queues_a_burst_while_it_resolves() {
        let links = [
            RouterLink {
                prefix: Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
            },
            RouterLink {
                prefix: Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0),
                mac: MacAddr([2, 0, 0, 0, 0, 2]),
            },
        ];
        let mut r = Router::new(Instant::ZERO, &links, Duration::from_secs(1), 1);
        let (cn, coa) = (
            Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100),
        );
        let burst = 10;
        for seq in 0..burst {
            let udp = PacketRepr::ipv6(
                cn,
                coa,
                vec![],
                UpperRepr::Raw {
                    protocol: IpProtocol::Udp,
                    data: vec![seq; 8],
                },
            )
            .to_bytes(&CodePoints::default());
            r.handle_packet(Instant::ZERO, 0, MacAddr([2, 0, 0, 9, 9, 9]), &udp);
        }
        let nd = r.interface(1).unwrap();
        let queued: usize = nd.neighbors().map(|(_, n)| n.queued()).sum();
        assert_eq!(queued, usize::from(burst));
        assert_eq!(r.stats().unresolved, 0);
    }
}
