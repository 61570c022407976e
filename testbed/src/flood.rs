//! Floods from random addresses, as an attacker on a link sends them:
//! clear BUs with a Home Address option (and an Alternate CoA, which asks
//! for the care-of address test), HoTI and CoTI, IKE_SA_INIT requests,
//! and Neighbor Solicitations from random on-link sources. Each packet is
//! well formed, so it gets as deep into the victim as such a packet can.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use common::ike::{Identity, Ike, IkeConfig, PeerAuth, PeerConfig, IKE_PORT};
use common::nd::nd_packet;
use common::node::{NodeDrop, MAX_LINKS};
use common::time::Instant;
use common::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use common::wire::nd::solicited_node;
use common::wire::packet::UdpPayload;
use common::wire::{CodePoints, ExtHeaderRepr, MacAddr, NdRepr, PacketRepr, UdpRepr, UpperRepr};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use common::time::Duration;

use crate::demo;
use crate::sim::{Flow, LinkId, NodeId, Path};
use crate::topology::{build, Topology, CN, CN_PREFIX, HA, HOA, HOME_PREFIX};

/// What a flood packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A clear BU from a random care-of address with a random home
    /// address and an Alternate CoA option.
    Bu,
    HomeTestInit,
    CareOfTestInit,
    /// A captured IKE_SA_INIT replayed with a random SPI and source.
    IkeInit,
    /// A Neighbor Solicitation for the victim from a random on-link
    /// address and MAC.
    Ns,
}

pub const KINDS: [Kind; 5] = [
    Kind::Bu,
    Kind::HomeTestInit,
    Kind::CareOfTestInit,
    Kind::IkeInit,
    Kind::Ns,
];

/// Flood packets at one victim on one link.
pub struct Flood {
    rng: ChaCha20Rng,
    pub link: LinkId,
    pub victim: Ipv6Addr,
    /// The link's /64: on-link sources come from it.
    pub on_link: Ipv6Addr,
    ike_init: Vec<u8>,
    pub sent: u64,
}

impl Flood {
    /// `None` only if our IKE initiator cannot make its IKE_SA_INIT.
    pub fn new(seed: u64, link: LinkId, victim: Ipv6Addr, on_link: Ipv6Addr) -> Option<Self> {
        // A real IKE_SA_INIT, made once by an initiator of ours.
        let mut cfg = IkeConfig::new(Identity::Fqdn("flood.example".into()), seed);
        cfg.peers.push(PeerConfig {
            name: "victim".into(),
            id: Identity::Fqdn("victim.example".into()),
            auth: PeerAuth::Psk(b"x".to_vec()),
            addresses: vec![SocketAddr::new(IpAddr::V6(victim), IKE_PORT)],
            children: vec![],
            local: None,
        });
        let mut ike = Ike::new(cfg);
        let us = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xf000, 0, 0, 0, 0, 1));
        ike.set_local_addresses(Instant::ZERO, &[us]);
        ike.initiate(Instant::ZERO, "victim").ok()?;
        let ike_init = ike.poll_transmit()?.bytes;
        Some(Flood {
            rng: ChaCha20Rng::seed_from_u64(seed),
            link,
            victim,
            on_link,
            ike_init,
            sent: 0,
        })
    }

    fn address_in(&mut self, prefix: Ipv6Addr) -> Ipv6Addr {
        let high = u128::from(prefix) & !u128::from(u64::MAX);
        Ipv6Addr::from(high | u128::from(self.rng.next_u64() | 1))
    }

    /// A random off-link address (2001:db8:f000::/36).
    fn far(&mut self) -> Ipv6Addr {
        let r = u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64());
        Ipv6Addr::from(0x2001_0db8_f000_u128 << 80 | r >> 44)
    }

    /// The next packet of `kind`.
    pub fn packet(&mut self, kind: Kind) -> Vec<u8> {
        let cp = CodePoints::default();
        let victim = self.victim;
        let mh = |message, options| UpperRepr::Mobility(MhRepr { message, options });
        let repr = match kind {
            Kind::Bu => {
                let (src, home, alt) = (self.far(), self.far(), self.far());
                let bu = MhMessage::BindingUpdate {
                    seq: self.rng.next_u32() as u16,
                    flags: BuFlags(BuFlags::A),
                    lifetime: 100,
                };
                PacketRepr::ipv6(
                    src,
                    victim,
                    vec![ExtHeaderRepr::home_address(home)],
                    mh(bu, vec![MhOption::AlternateCareOfAddress(alt)]),
                )
            }
            Kind::HomeTestInit | Kind::CareOfTestInit => {
                let src = self.far();
                let cookie = self.rng.next_u64();
                let m = if kind == Kind::HomeTestInit {
                    MhMessage::HomeTestInit { cookie }
                } else {
                    MhMessage::CareOfTestInit { cookie }
                };
                PacketRepr::ipv6(src, victim, vec![], mh(m, vec![]))
            }
            Kind::IkeInit => {
                let src = self.far();
                let mut init = self.ike_init.clone();
                init[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
                let udp = UdpRepr {
                    src_port: IKE_PORT,
                    dst_port: IKE_PORT,
                };
                PacketRepr::ipv6(
                    src,
                    victim,
                    vec![],
                    UpperRepr::Udp(udp, UdpPayload::Raw(init)),
                )
            }
            Kind::Ns => {
                let src = self.address_in(self.on_link);
                let mut mac = [0u8; 6];
                self.rng.fill_bytes(&mut mac);
                mac[0] = (mac[0] & 0xfe) | 0x02;
                let ns = NdRepr::NeighborSolicit {
                    target: victim,
                    source_ll: Some(MacAddr(mac)),
                };
                nd_packet(src, solicited_node(victim), &ns)
            }
        };
        self.sent += 1;
        repr.to_bytes(&cp)
    }
}

/// Runs `t` to `until`, putting `per_ms` packets of each flood on its link
/// every millisecond from `from` on, the kinds in turn.
pub fn run(t: &mut Topology, floods: &mut [Flood], per_ms: u32, from: Instant, until: Instant) {
    t.sim.run_until(from);
    let mut now = from;
    let mut k = 0usize;
    while now < until {
        for f in floods.iter_mut() {
            for _ in 0..per_ms {
                let p = f.packet(KINDS[k % KINDS.len()]);
                k += 1;
                t.sim.inject(f.link, p);
            }
        }
        now += Duration::from_millis(1);
        t.sim.run_until(now.min(until));
    }
}

/// What [`scenario`] measured.
pub struct Outcome {
    pub t: Topology,
    /// Link up → first route-optimised packet from the correspondent, per
    /// handoff.
    pub handoffs: Vec<Option<Duration>>,
    /// When the mobile node's IKE SA with each peer (by identity) came up.
    pub ike_up: Vec<(String, Instant)>,
    pub flood_packets: u64,
}

impl Outcome {
    pub fn ike_up(&self, peer: &str) -> Option<Instant> {
        self.ike_up
            .iter()
            .find(|(p, _)| p == peer)
            .map(|(_, at)| *at)
    }

    /// The flood's BUs `node` refused: unprotected, without valid
    /// authorisation, or with a HAO nothing vouches for.
    pub fn bus_refused(&self, node: NodeId) -> u64 {
        self.t.sim.engine(node).map_or(0, |e| {
            [
                NodeDrop::Unprotected,
                NodeDrop::BadAuthorization,
                NodeDrop::HaoUnverified,
            ]
            .into_iter()
            .map(|r| e.stats().dropped(r))
            .sum()
        })
    }

    /// Entries in `node`'s neighbour caches.
    pub fn neighbours(&self, node: NodeId) -> usize {
        self.t.sim.engine(node).map_or(0, |e| {
            (0..MAX_LINKS as u8)
                .filter_map(|i| e.interface(i))
                .map(|i| i.neighbors().count())
                .sum()
        })
    }
}

fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6) as u64)
}

/// The demo's IPsec run keyed by IKE (MOBIKE), flows both ways every
/// millisecond from 1 s, moving to access A at 2 s and B at 4 s, to 6 s;
/// `per_ms` flood packets a millisecond at each of the correspondent and
/// the home agent, on their links, from the start.
pub fn scenario(per_ms: u32) -> Outcome {
    let [_, _, setup] = demo::setups(1);
    let mut t = build(&setup);
    let ms = Duration::from_millis(1);
    let flow = |from, src, dst| Flow {
        from,
        src,
        dst,
        interval: ms,
        until: secs(5.5),
    };
    let down = t.sim.flow(secs(1.0), flow(t.cn, CN, HOA));
    t.sim.flow(secs(1.0), flow(t.mn, HOA, CN));
    for (at, to) in [(2.0, t.access_a), (4.0, t.access_b)] {
        t.move_mn(secs(at), Some(to));
    }
    let mut floods: Vec<Flood> = [
        Flood::new(7, t.cn_link, CN, CN_PREFIX),
        Flood::new(8, t.home, HA, HOME_PREFIX),
    ]
    .into_iter()
    .flatten()
    .collect();
    run(&mut t, &mut floods, per_ms, Instant::ZERO, secs(6.0));
    let ups: Vec<Instant> = t
        .sim
        .link_ups
        .iter()
        .filter(|(at, p, _)| p.node == t.mn && *at > secs(1.0))
        .map(|(at, _, _)| *at)
        .collect();
    let handoffs = ups
        .iter()
        .map(|up| {
            t.sim
                .arrivals
                .iter()
                .find(|a| a.flow == down && a.at >= *up && a.path == Path::RouteOptimised)
                .map(|a| a.at - *up)
        })
        .collect();
    let ike_up = t
        .sim
        .trace()
        .into_iter()
        .filter(|l| l.node == "mn" && l.what.contains(" up, "))
        .filter_map(|l| {
            let peer = l.what.split(" with ").nth(1)?.split(' ').next()?;
            Some((peer.to_string(), l.at))
        })
        .collect();
    Outcome {
        t,
        handoffs,
        ike_up,
        flood_packets: floods.iter().map(|f| f.sent).sum(),
    }
}
