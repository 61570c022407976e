//! Interfaces on one simulated Ethernet, exchanging their frames in
//! virtual time.

use super::*;
use crate::wire::nd::PrefixInfo;
use crate::wire::{Ipv6Repr, UdpRepr};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

struct Bus {
    now: Instant,
    nodes: Vec<NdIface>,
    /// Whether a node hears the link (a node that left does not).
    attached: Vec<bool>,
    /// Non-ND packets each node received.
    data: Vec<Vec<PacketRepr>>,
    /// Every frame put on the link: sender, destination MAC, parsed packet.
    wire: Vec<(usize, MacAddr, PacketRepr)>,
}

fn header(p: &PacketRepr) -> Ipv6Repr {
    match &p.ip {
        IpRepr::V6 { header, .. } => *header,
        IpRepr::V4(_) => panic!("v4"),
    }
}

fn nd_of(p: &PacketRepr) -> Option<NdRepr> {
    match &p.upper {
        UpperRepr::Icmpv6(i) => NdRepr::parse(i).unwrap(),
        _ => None,
    }
}

impl Bus {
    fn new(nodes: Vec<NdIface>) -> Bus {
        let n = nodes.len();
        Bus {
            now: Instant::ZERO,
            nodes,
            attached: vec![true; n],
            data: vec![vec![]; n],
            wire: vec![],
        }
    }

    /// Delivers everything queued, then runs timers, until `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.deliver();
            let next = self.nodes.iter().filter_map(NdIface::poll_timeout).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in &mut self.nodes {
                        n.handle_timeout(now);
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self) {
        let now = self.now;
        loop {
            let mut any = false;
            for from in 0..self.nodes.len() {
                while let Some(f) = self.nodes[from].poll_frame() {
                    any = true;
                    let p = PacketRepr::parse(&f.bytes, &CodePoints::default()).unwrap();
                    self.wire.push((from, f.dst, p.clone()));
                    if !self.attached[from] {
                        continue;
                    }
                    for to in 0..self.nodes.len() {
                        let hears = to != from
                            && self.attached[to]
                            && (f.dst.is_multicast() || f.dst == self.nodes[to].mac());
                        if !hears {
                            continue;
                        }
                        let h = header(&p);
                        match nd_of(&p) {
                            Some(m) => {
                                let _ = self.nodes[to].handle(now, h.src, h.dst, h.hop_limit, &m);
                            }
                            None => self.data[to].push(p.clone()),
                        }
                    }
                }
            }
            if !any {
                break;
            }
        }
    }

    fn sent(&self, from: usize, pred: impl Fn(&NdRepr, &Ipv6Repr) -> bool) -> usize {
        self.wire
            .iter()
            .filter(|(f, _, p)| *f == from && nd_of(p).is_some_and(|m| pred(&m, &header(p))))
            .count()
    }

    fn events(&mut self, node: usize) -> Vec<NdEvent> {
        std::iter::from_fn(|| self.nodes[node].poll_event()).collect()
    }
}

fn host(n: u64, dad: Dad) -> NdIface {
    NdIface::new(
        Instant::ZERO,
        NdConfig::default(),
        MacAddr::local(n),
        dad,
        n,
    )
}

fn router(n: u64) -> NdIface {
    let cfg = NdConfig {
        router: true,
        ..NdConfig::default()
    };
    NdIface::new(Instant::ZERO, cfg, MacAddr::local(n), Dad::Off, n)
}

fn udp(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let u = UdpRepr {
        src_port: 1,
        dst_port: 2,
    };
    PacketRepr::ipv6(
        src,
        dst,
        vec![],
        UpperRepr::Udp(u, crate::wire::packet::UdpPayload::Raw(vec![7; 8])),
    )
    .to_bytes(&CodePoints::default())
}

fn advert(prefix: Ipv6Addr) -> RouterAdvert {
    RouterAdvert {
        hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: None,
        mtu: None,
        prefixes: vec![PrefixInfo::slaac(prefix)],
        advertisement_interval: None,
    }
}

#[test]
fn address_resolution_queues_then_delivers_and_confirms() {
    let (x, y) = (a("2001:db8::1"), a("2001:db8::2"));
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, x, Dad::Off);
    bus.nodes[1].add_address(Instant::ZERO, y, Dad::Off);
    let now = bus.now;
    assert_eq!(bus.nodes[0].send(now, y, x, udp(x, y)), Sent::Queued);
    assert_eq!(bus.nodes[0].send(now, y, x, udp(x, y)), Sent::Queued);
    bus.run_for(Duration::from_millis(1));
    // One multicast NS to y's solicited-node group, from x, with our MAC.
    assert_eq!(
        bus.sent(
            0,
            |m, h| matches!(m, NdRepr::NeighborSolicit { target, source_ll: Some(_) }
            if *target == y)
                && h.dst == solicited_node(y)
                && h.src == x
                && h.hop_limit == 255
        ),
        1
    );
    // y answered solicited, with O=1, unicast.
    let na = bus
        .wire
        .iter()
        .find(|(f, _, p)| *f == 1 && nd_of(p).is_some());
    let (_, dst, p) = na.unwrap();
    assert_eq!(*dst, MacAddr::local(1));
    assert!(
        matches!(nd_of(p), Some(NdRepr::NeighborAdvert { flags, .. })
        if flags.solicited && flags.override_ && !flags.router)
    );
    assert_eq!(bus.data[1].len(), 2, "both queued packets");
    let e = bus.nodes[0].neighbor(y).unwrap();
    assert_eq!(e.state, NeighborState::Reachable);
    assert_eq!(e.mac, Some(MacAddr::local(2)));
    // y learnt x from the NS's link-layer option: stale, no NS needed back.
    assert_eq!(
        bus.nodes[1].neighbor(x).unwrap().state,
        NeighborState::Stale
    );
}

#[test]
fn a_full_resolution_queue_keeps_the_oldest_packets() {
    let (x, y) = (a("2001:db8::1"), a("2001:db8::2"));
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, x, Dad::Off);
    bus.nodes[1].add_address(Instant::ZERO, y, Dad::Off);
    let now = bus.now;
    for port in 1..=5 {
        let mut p = PacketRepr::parse(&udp(x, y), &CodePoints::default()).unwrap();
        if let UpperRepr::Udp(u, _) = &mut p.upper {
            u.src_port = port;
        }
        let p = p.to_bytes(&CodePoints::default());
        let want = if port <= 3 {
            Sent::Queued
        } else {
            Sent::Dropped
        };
        assert_eq!(bus.nodes[0].send(now, y, x, p), want);
    }
    bus.run_for(Duration::from_millis(10));
    // The first three, which start the exchanges, are kept.
    let ports: Vec<u16> = bus.data[1]
        .iter()
        .filter_map(|p| match &p.upper {
            UpperRepr::Udp(u, _) => Some(u.src_port),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [1, 2, 3]);
    assert_eq!(bus.nodes[0].stats().unresolved, 2);
}

#[test]
fn the_neighbour_cache_stays_at_its_limit_and_keeps_its_router() {
    let cfg = NdConfig {
        max_neighbors: 4,
        ..NdConfig::default()
    };
    let mut nd = NdIface::new(Instant::ZERO, cfg, MacAddr::local(1), Dad::Off, 1);
    let x = a("2001:db8::1");
    nd.add_address(Instant::ZERO, x, Dad::Off);
    let mut ra = advert(a("2001:db8::"));
    ra.source_ll = Some(MacAddr::local(9));
    let router_ll = a("fe80::9");
    nd.handle(
        Instant::ZERO,
        router_ll,
        ALL_NODES,
        255,
        &NdRepr::RouterAdvert(ra),
    )
    .unwrap();
    // A flood of solicitations from random on-link sources, each with
    // its link-layer address.
    for i in 0..100u16 {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1000 - i);
        let ns = NdRepr::NeighborSolicit {
            target: x,
            source_ll: Some(MacAddr::local(100 + u64::from(i))),
        };
        let _ = nd.handle(Instant::ZERO, src, solicited_node(x), 255, &ns);
    }
    assert_eq!(nd.neighbors().count(), 4);
    assert!(nd.neighbor(router_ll).is_some_and(|e| e.is_router));
    assert_eq!(nd.stats().cache_full, 97);
}

#[test]
fn unanswered_resolution_gives_up_after_three_and_counts() {
    let x = a("2001:db8::1");
    let mut bus = Bus::new(vec![host(1, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, x, Dad::Off);
    let ghost = a("2001:db8::99");
    for _ in 0..5 {
        let now = bus.now;
        bus.nodes[0].send(now, ghost, x, udp(x, ghost));
    }
    bus.run_for(Duration::from_secs(10));
    assert_eq!(
        bus.sent(0, |m, _| matches!(m, NdRepr::NeighborSolicit { .. })),
        MAX_MULTICAST_SOLICIT as usize
    );
    assert_eq!(
        bus.events(0),
        vec![NdEvent::NeighborUnreachable {
            neighbor: ghost,
            dropped: NdConfig::default().queue_per_neighbor
        }]
    );
    // Two did not fit the queue, three died with the entry.
    assert_eq!(bus.nodes[0].stats().unresolved, 5);
    assert!(bus.nodes[0].neighbor(ghost).is_none());
}

#[test]
fn dad_finds_a_defended_address_and_an_address_probed_at_once() {
    let x = a("2001:db8::1");
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, x, Dad::Off);
    bus.nodes[1].add_address(Instant::ZERO, x, Dad::Standard);
    assert!(!bus.nodes[1].usable(x), "tentative");
    bus.run_for(Duration::from_secs(2));
    assert_eq!(bus.events(1), vec![NdEvent::AddressDuplicate(x)]);
    assert_eq!(bus.nodes[1].state(x), Some(AddrState::Duplicate));
    // The defender answered to all nodes (the prober has no address).
    assert_eq!(
        bus.sent(
            0,
            |m, h| matches!(m, NdRepr::NeighborAdvert { flags, .. } if !flags.solicited)
                && h.dst == ALL_NODES
        ),
        1
    );

    // Two nodes probing the same address at the same time both lose.
    let y = a("2001:db8::2");
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, y, Dad::Optimistic);
    bus.nodes[1].add_address(Instant::ZERO, y, Dad::Standard);
    bus.run_for(Duration::from_secs(2));
    assert_eq!(bus.events(0), vec![NdEvent::AddressDuplicate(y)]);
    assert_eq!(bus.events(1), vec![NdEvent::AddressDuplicate(y)]);
}

#[test]
fn optimistic_address_is_usable_at_once_and_never_overrides() {
    let x = a("2001:db8::1");
    let y = a("2001:db8::2");
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, x, Dad::Off);
    bus.nodes[1].add_address(Instant::ZERO, y, Dad::Optimistic);
    assert_eq!(bus.nodes[1].state(y), Some(AddrState::Optimistic));
    assert!(bus.nodes[1].usable(y));
    let now = bus.now;
    bus.nodes[0].send(now, y, x, udp(x, y));
    bus.run_for(Duration::from_millis(10));
    // REQ MIP-BASE (RFC 4429 §3.3): the optimistic owner answers with O=0.
    let na: Vec<_> = bus
        .wire
        .iter()
        .filter(|(f, _, p)| {
            *f == 1
                && matches!(nd_of(p), Some(NdRepr::NeighborAdvert { flags, .. }) if flags.solicited)
        })
        .collect();
    assert_eq!(na.len(), 1);
    assert!(
        matches!(nd_of(&na[0].2), Some(NdRepr::NeighborAdvert { flags, .. })
        if flags.solicited && !flags.override_)
    );
    assert_eq!(bus.data[1].len(), 1);
    bus.run_for(Duration::from_secs(1));
    assert_eq!(bus.events(1), vec![NdEvent::AddressReady(y)]);
    assert_eq!(bus.nodes[1].state(y), Some(AddrState::Preferred));
}

/// The unsolicited NAs `from` sent to the routers, as (target, O flag,
/// target link-layer address).
fn told_routers(bus: &Bus, from: usize) -> Vec<(Ipv6Addr, bool, Option<MacAddr>)> {
    bus.wire
        .iter()
        .filter(|(f, _, p)| *f == from && header(p).dst == ALL_ROUTERS)
        .filter_map(|(_, _, p)| match nd_of(p) {
            Some(NdRepr::NeighborAdvert {
                flags,
                target,
                target_ll,
            }) if !flags.solicited => Some((target, flags.override_, target_ll)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_address_is_told_to_the_router_which_then_sends_to_it_without_resolving() {
    let prefix = a("2001:db8:2::");
    let coa = a("2001:db8:2::5");
    let mut r = router(1);
    r.add_on_link(prefix, 64);
    let gw = a("2001:db8:2::1");
    r.add_address(Instant::ZERO, gw, Dad::Off);
    let mut bus = Bus::new(vec![r, host(2, Dad::Optimistic)]);
    bus.nodes[1].add_address(Instant::ZERO, coa, Dad::Optimistic);
    bus.deliver();
    // RFC 9131 §4.1: at once, from the address, S=0 and O=0 (RFC 4429 §3.3).
    assert_eq!(
        told_routers(&bus, 1),
        vec![(coa, false, Some(MacAddr::local(2)))]
    );
    // §4.2: the router holds it STALE, and its first packet goes at once.
    let e = bus.nodes[0].neighbor(coa).unwrap();
    assert_eq!(
        (e.state, e.mac),
        (NeighborState::Stale, Some(MacAddr::local(2)))
    );
    let now = bus.now;
    assert_eq!(bus.nodes[0].send(now, coa, gw, udp(gw, coa)), Sent::Now);
    bus.deliver();
    assert_eq!(bus.data[1].len(), 1);
    let solicits = |m: &NdRepr, _: &Ipv6Repr| matches!(m, NdRepr::NeighborSolicit { .. });
    assert_eq!(bus.sent(0, solicits), 0);
}

#[test]
fn only_a_router_takes_an_announcement_and_only_for_its_prefixes() {
    let mut r = router(1);
    r.add_on_link(a("2001:db8:2::"), 64);
    let mut bus = Bus::new(vec![r, host(2, Dad::Off), host(3, Dad::Optimistic)]);
    let off_link = a("2001:db8:9::5");
    bus.nodes[2].add_address(Instant::ZERO, off_link, Dad::Optimistic);
    let on_link = a("2001:db8:2::5");
    bus.nodes[2].add_address(Instant::ZERO, on_link, Dad::Optimistic);
    bus.deliver();
    assert_eq!(told_routers(&bus, 2).len(), 2);
    assert!(bus.nodes[0].neighbor(off_link).is_none());
    assert!(bus.nodes[0].neighbor(on_link).is_some());
    // A host keeps no entry for what it did not ask about (RFC 4861 §7.2.5).
    assert!(bus.nodes[1].neighbor(on_link).is_none());
}

#[test]
fn an_address_under_standard_dad_is_told_to_the_routers_once_it_passed() {
    let coa = a("2001:db8:2::5");
    let mut bus = Bus::new(vec![router(1), host(2, Dad::Off)]);
    bus.nodes[1].add_address(Instant::ZERO, coa, Dad::Standard);
    bus.run_for(Duration::from_millis(500));
    assert!(told_routers(&bus, 1).is_empty(), "tentative: not yet");
    bus.run_for(Duration::from_secs(1));
    assert_eq!(bus.events(1), vec![NdEvent::AddressReady(coa)]);
    assert_eq!(told_routers(&bus, 1).len(), 1);
}

#[test]
fn optimistic_source_goes_through_the_router_instead_of_resolving() {
    let coa = a("2001:db8:2::5");
    let peer = a("2001:db8:2::9");
    let mut bus = Bus::new(vec![router(1), host(2, Dad::Optimistic)]);
    bus.nodes[1].solicit_routers(Instant::ZERO);
    bus.deliver();
    // The router answers the RS.
    let now = bus.now;
    bus.nodes[0].advertise(
        ALL_NODES,
        MacAddr::ipv6_multicast(ALL_NODES),
        advert(a("2001:db8:2::")),
    );
    bus.deliver();
    bus.nodes[1].add_address(now, coa, Dad::Optimistic);
    bus.deliver();
    bus.wire.clear();
    assert_eq!(bus.nodes[1].send(now, peer, coa, udp(coa, peer)), Sent::Now);
    bus.deliver();
    assert_eq!(
        bus.sent(1, |m, _| matches!(m, NdRepr::NeighborSolicit { .. })),
        0
    );
    assert_eq!(bus.data[0].len(), 1, "handed to the router");
}

#[test]
fn router_discovery_gives_a_default_router_and_on_link_prefix() {
    let mut bus = Bus::new(vec![router(1), host(2, Dad::Optimistic)]);
    bus.nodes[1].solicit_routers(Instant::ZERO);
    bus.deliver();
    // RFC 4429 §3.3: no link-layer option from an optimistic link-local.
    assert_eq!(
        bus.sent(1, |m, h| matches!(
            m,
            NdRepr::RouterSolicit { source_ll: None }
        ) && h.dst == ALL_ROUTERS),
        1
    );
    bus.nodes[0].advertise(
        ALL_NODES,
        MacAddr::ipv6_multicast(ALL_NODES),
        advert(a("2001:db8:2::")),
    );
    bus.deliver();
    let rtr = bus.nodes[0].link_local();
    let ev = bus.events(1);
    assert!(matches!(&ev[..], [NdEvent::RouterAdvert { router, advert }]
        if *router == rtr && advert.source_ll == Some(MacAddr::local(1))));
    assert_eq!(bus.nodes[1].default_router(), Some(rtr));
    assert_eq!(bus.nodes[1].next_hop(a("2001:db8:9::1")), Some(rtr));
    assert_eq!(
        bus.nodes[1].next_hop(a("2001:db8:2::7")),
        Some(a("2001:db8:2::7"))
    );
    let e = bus.nodes[1].neighbor(rtr).unwrap();
    assert_eq!((e.state, e.is_router), (NeighborState::Stale, true));
    // An RA stops the solicitations: no second RS after 4 s.
    bus.run_for(Duration::from_secs(9));
    assert_eq!(
        bus.sent(1, |m, _| matches!(m, NdRepr::RouterSolicit { .. })),
        1
    );
}

#[test]
fn unanswered_solicitations_stop_after_three() {
    let mut bus = Bus::new(vec![host(2, Dad::Off)]);
    bus.nodes[0].solicit_routers(Instant::ZERO);
    bus.run_for(Duration::from_secs(60));
    assert_eq!(
        bus.sent(0, |m, _| matches!(m, NdRepr::RouterSolicit { .. })),
        usize::from(MAX_RTR_SOLICITATIONS)
    );
    assert_eq!(bus.nodes[0].poll_timeout(), None, "nothing left to do");
}

#[test]
fn nud_probes_a_stale_router_and_reports_it_lost() {
    let mut bus = Bus::new(vec![router(1), host(2, Dad::Off)]);
    let now = bus.now;
    bus.nodes[0].advertise(
        ALL_NODES,
        MacAddr::ipv6_multicast(ALL_NODES),
        advert(a("2001:db8:2::")),
    );
    bus.deliver();
    bus.events(1);
    let coa = a("2001:db8:2::5");
    bus.nodes[1].add_address(now, coa, Dad::Off);
    let rtr = bus.nodes[0].link_local();
    // The router is gone from the link; the host sends through it.
    bus.attached[0] = false;
    let far = a("2001:db8:9::1");
    bus.nodes[1].send(now, rtr, coa, udp(coa, far));
    assert_eq!(
        bus.nodes[1].neighbor(rtr).unwrap().state,
        NeighborState::Delay
    );
    bus.run_for(DELAY_FIRST_PROBE_TIME);
    assert_eq!(
        bus.nodes[1].neighbor(rtr).unwrap().state,
        NeighborState::Probe
    );
    bus.run_for(Duration::from_secs(4));
    // Three unicast probes to the router's MAC, then the verdict.
    let probes = bus
        .wire
        .iter()
        .filter(|(f, dst, p)| {
            *f == 1
                && *dst == MacAddr::local(1)
                && matches!(nd_of(p), Some(NdRepr::NeighborSolicit { .. }))
        })
        .count();
    assert_eq!(probes, MAX_UNICAST_SOLICIT as usize);
    assert_eq!(
        bus.events(1),
        vec![
            NdEvent::NeighborUnreachable {
                neighbor: rtr,
                dropped: 0
            },
            NdEvent::RouterLost(rtr)
        ]
    );
    assert_eq!(bus.nodes[1].default_router(), None);
}

#[test]
fn reachable_entries_go_stale_and_a_probe_answer_confirms_them() {
    let (x, y) = (a("2001:db8::1"), a("2001:db8::2"));
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Off)]);
    bus.nodes[0].add_address(Instant::ZERO, x, Dad::Off);
    bus.nodes[1].add_address(Instant::ZERO, y, Dad::Off);
    let now = bus.now;
    bus.nodes[0].send(now, y, x, udp(x, y));
    bus.run_for(Duration::from_millis(1));
    assert_eq!(
        bus.nodes[0].neighbor(y).unwrap().state,
        NeighborState::Reachable
    );
    // ReachableTime is at most 1.5 × 30 s.
    bus.run_for(Duration::from_secs(46));
    assert_eq!(
        bus.nodes[0].neighbor(y).unwrap().state,
        NeighborState::Stale
    );
    let now = bus.now;
    bus.nodes[0].send(now, y, x, udp(x, y));
    bus.run_for(DELAY_FIRST_PROBE_TIME + Duration::from_millis(1));
    assert_eq!(
        bus.nodes[0].neighbor(y).unwrap().state,
        NeighborState::Reachable
    );
    assert_eq!(bus.data[1].len(), 2);
}

#[test]
fn invalid_messages_are_dropped_and_counted() {
    let x = a("2001:db8::1");
    let mut nd = host(1, Dad::Off);
    nd.add_address(Instant::ZERO, x, Dad::Off);
    let ns = NdRepr::NeighborSolicit {
        target: x,
        source_ll: Some(MacAddr::local(9)),
    };
    let t = Instant::ZERO;
    // RFC 4861 §7.1.1: hop limit 255 only.
    assert_eq!(
        nd.handle(t, a("2001:db8::9"), solicited_node(x), 254, &ns),
        Err(NdDrop::Invalid)
    );
    // A DAD probe has no link-layer option.
    assert_eq!(
        nd.handle(t, Ipv6Addr::UNSPECIFIED, solicited_node(x), 255, &ns),
        Err(NdDrop::Invalid)
    );
    // §7.1.2: a solicited NA is never multicast.
    let na = NdRepr::NeighborAdvert {
        flags: NaFlags {
            router: false,
            solicited: true,
            override_: true,
        },
        target: a("2001:db8::9"),
        target_ll: None,
    };
    assert_eq!(
        nd.handle(t, a("2001:db8::9"), ALL_NODES, 255, &na),
        Err(NdDrop::Invalid)
    );
    // §6.1.2: an RA comes from a link-local address.
    let ra = NdRepr::RouterAdvert(advert(a("2001:db8:2::")));
    assert_eq!(
        nd.handle(t, a("2001:db8::9"), ALL_NODES, 255, &ra),
        Err(NdDrop::Invalid)
    );
    assert_eq!(nd.stats().invalid, 4);
    assert!(nd.poll_frame().is_none());
    assert!(nd.default_router().is_none());
}

#[test]
fn proxy_checks_then_announces_defends_and_stops() {
    let hoa = a("2001:db8:1::100");
    let ha = a("2001:db8:1::1");
    let mut bus = Bus::new(vec![host(1, Dad::Off), router(2)]);
    bus.nodes[0].add_address(Instant::ZERO, ha, Dad::Off);
    bus.nodes[0].add_proxy(Instant::ZERO, hoa, true);
    assert!(!bus.nodes[0].is_proxying(hoa));
    bus.run_for(Duration::from_millis(999));
    assert!(bus.events(0).is_empty(), "DAD takes RetransTimer");
    bus.run_for(Duration::from_millis(1));
    assert_eq!(
        bus.events(0),
        vec![NdEvent::ProxyChecked {
            address: hoa,
            unique: true
        }]
    );
    bus.run_for(Duration::from_secs(5));
    // RFC 6275 §10.4.1: unsolicited NAs for the home address, O=1, S=0,
    // with the home agent's MAC, MAX_NEIGHBOR_ADVERTISEMENT of them.
    assert_eq!(
        bus.sent(
            0,
            |m, h| matches!(m, NdRepr::NeighborAdvert { flags, target, target_ll }
            if *target == hoa && flags.override_ && !flags.solicited
                && *target_ll == Some(MacAddr::local(1)))
                && h.dst == ALL_NODES
        ),
        usize::from(MAX_NEIGHBOR_ADVERTISEMENT)
    );
    // The router resolves the home address and gets the home agent's MAC.
    let now = bus.now;
    let rtr = bus.nodes[1].link_local();
    bus.nodes[1].send(now, hoa, rtr, udp(a("2001:db8:3::1"), hoa));
    bus.run_for(Duration::from_millis(1));
    assert_eq!(bus.data[0].len(), 1, "intercepted");
    assert_eq!(
        bus.nodes[1].neighbor(hoa).unwrap().mac,
        Some(MacAddr::local(1))
    );
    // Deregistered: no answer any more.
    bus.nodes[0].remove_proxy(hoa);
    bus.wire.clear();
    let other = a("2001:db8:1::200");
    let now = bus.now;
    bus.nodes[1].send(now, other, rtr, udp(rtr, other));
    let ns = NdRepr::NeighborSolicit {
        target: hoa,
        source_ll: Some(MacAddr::local(2)),
    };
    let _ = bus.nodes[0].handle(now, rtr, solicited_node(hoa), 255, &ns);
    assert_eq!(
        bus.sent(0, |m, _| matches!(m, NdRepr::NeighborAdvert { .. })),
        0
    );
}

#[test]
fn proxy_check_finds_the_home_address_in_use() {
    let hoa = a("2001:db8:1::100");
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(3, Dad::Off)]);
    bus.nodes[1].add_address(Instant::ZERO, hoa, Dad::Off);
    bus.nodes[0].add_proxy(Instant::ZERO, hoa, true);
    bus.run_for(Duration::from_secs(2));
    assert_eq!(
        bus.events(0),
        vec![NdEvent::ProxyChecked {
            address: hoa,
            unique: false
        }]
    );
    assert_eq!(bus.nodes[0].proxied().count(), 0);
}

#[test]
fn mobile_node_home_again_reaches_its_home_agent_then_announces() {
    // RFC 6275 §11.5.5: the home address is still proxied, so the mobile
    // node asks for its own home address from ::, takes the agent's MAC
    // from the answer, and announces the home address only when told.
    let hoa = a("2001:db8:1::100");
    let ha = a("2001:db8:1::1");
    let mut bus = Bus::new(vec![host(1, Dad::Off), host(2, Dad::Optimistic)]);
    bus.nodes[0].add_address(Instant::ZERO, ha, Dad::Off);
    bus.nodes[0].add_on_link(a("2001:db8:1::"), 64);
    bus.nodes[0].add_proxy(Instant::ZERO, hoa, false);
    bus.run_for(Duration::from_secs(3));
    bus.wire.clear();
    bus.nodes[1].add_quiet_address(hoa);
    bus.nodes[1].add_on_link(a("2001:db8:1::"), 64);
    let now = bus.now;
    bus.nodes[1].send(now, ha, hoa, udp(hoa, ha));
    bus.run_for(Duration::from_millis(1));
    assert_eq!(
        bus.sent(
            1,
            |m, h| matches!(m, NdRepr::NeighborSolicit { source_ll: None, target }
            if *target == hoa)
                && h.src.is_unspecified()
        ),
        1
    );
    // The agent defended the home address (to all nodes, O=0) and the
    // node took its MAC for the agent's address.
    assert_eq!(
        bus.sent(
            0,
            |m, h| matches!(m, NdRepr::NeighborAdvert { flags, target, .. }
            if *target == hoa && !flags.override_ && !flags.solicited)
                && h.dst == ALL_NODES
        ),
        1
    );
    assert_eq!(bus.data[0].len(), 1, "the BU reached the home agent");
    let e = bus.nodes[1].neighbor(ha).unwrap();
    assert_eq!(
        (e.state, e.mac),
        (NeighborState::Reachable, Some(MacAddr::local(1)))
    );
    // The quiet home address is not defended yet.
    let ns = NdRepr::NeighborSolicit {
        target: hoa,
        source_ll: Some(MacAddr::local(1)),
    };
    let _ = bus.nodes[1].handle(now, ha, solicited_node(hoa), 255, &ns);
    assert_eq!(
        bus.sent(1, |m, _| matches!(m, NdRepr::NeighborAdvert { .. })),
        0
    );
    // The home agent answers the node straight from the BU's frame.
    bus.nodes[0].remove_proxy(hoa);
    bus.nodes[0].learn(now, hoa, MacAddr::local(2));
    bus.nodes[0].send(now, hoa, ha, udp(ha, hoa));
    bus.run_for(Duration::from_millis(1));
    assert_eq!(bus.data[1].len(), 1);
    assert_eq!(
        bus.sent(0, |m, _| matches!(m, NdRepr::NeighborSolicit { .. })),
        0
    );
    bus.nodes[1].announce(now, hoa);
    bus.run_for(Duration::from_secs(5));
    assert_eq!(
        bus.sent(
            1,
            |m, h| matches!(m, NdRepr::NeighborAdvert { flags, target, .. }
            if *target == hoa && flags.override_ && !flags.solicited)
                && h.dst == ALL_NODES
        ),
        MAX_NEIGHBOR_ADVERTISEMENT as usize
    );
}

#[test]
fn messages_for_another_role_are_counted_not_ignored() {
    let (mut h, mut r) = (host(2, Dad::Optimistic), router(1));
    let rs = NdRepr::RouterSolicit { source_ll: None };
    let got = h.handle(Instant::ZERO, a("fe80::9"), ALL_ROUTERS, 255, &rs);
    assert_eq!(got, Err(NdDrop::NotForRole));
    let ra = NdRepr::RouterAdvert(advert(a("2001:db8:2::")));
    let got = r.handle(Instant::ZERO, a("fe80::9"), ALL_NODES, 255, &ra);
    assert_eq!(got, Err(NdDrop::NotForRole));
    assert_eq!((h.stats().not_for_role, r.stats().not_for_role), (1, 1));
}

#[test]
fn solicitation_for_a_target_not_ours_is_counted_and_caches_nobody() {
    let mut h = host(2, Dad::Optimistic);
    let ns = NdRepr::NeighborSolicit {
        target: a("2001:db8:2::77"),
        source_ll: Some(MacAddr::local(9)),
    };
    let got = h.handle(Instant::ZERO, a("fe80::9"), a("ff02::1:ff00:77"), 255, &ns);
    assert_eq!(got, Err(NdDrop::NotOurs));
    assert_eq!(
        h.neighbors().count(),
        0,
        "§7.2.3: no entry from an NS for another"
    );
    assert_eq!(h.stats().not_ours, 1);
}

#[test]
fn a_solicited_node_group_is_joined_once_and_left_after_its_last_address() {
    // The same interface identifier under two home prefixes, and an
    // address of our own with the same low 24 bits: one group for all.
    let hoa1 = a("2001:db8:1::100");
    let hoa2 = a("2001:db8:2::100");
    let own = a("2001:db8:3:0:1::100");
    let group = solicited_node(hoa1);
    assert_eq!(solicited_node(own), group);
    let mut nd = host(1, Dad::Off);
    let membership = |nd: &mut NdIface| std::iter::from_fn(|| nd.poll_membership()).collect();
    let _: Vec<_> = membership(&mut nd);
    nd.add_proxy(Instant::ZERO, hoa1, true);
    nd.add_proxy(Instant::ZERO, hoa2, false);
    nd.add_address(Instant::ZERO, own, Dad::Off);
    assert_eq!(membership(&mut nd), vec![Membership::Join(group)]);
    nd.remove_proxy(hoa1);
    nd.remove_address(own);
    assert_eq!(membership(&mut nd), Vec::<Membership>::new());
    // An NS for the remaining address is still heard and answered.
    while nd.poll_frame().is_some() {}
    let ns = NdRepr::NeighborSolicit {
        target: hoa2,
        source_ll: Some(MacAddr::local(2)),
    };
    let _ = nd.handle(Instant::ZERO, a("fe80::2"), group, 255, &ns);
    assert!(std::iter::from_fn(|| nd.poll_frame()).any(|f| {
        let p = PacketRepr::parse(&f.bytes, &CodePoints::default()).unwrap();
        matches!(nd_of(&p), Some(NdRepr::NeighborAdvert { target, flags, .. })
            if target == hoa2 && flags.solicited)
    }));
    nd.remove_proxy(hoa2);
    assert_eq!(membership(&mut nd), vec![Membership::Leave(group)]);
    // A group no address needs any more is joined afresh.
    nd.add_proxy(Instant::ZERO, hoa1, false);
    assert_eq!(membership(&mut nd), vec![Membership::Join(group)]);
}
