//! Binding Updates per second at a correspondent and at a home agent that
//! already hold a million bindings (`BINDINGS=n` for another size), next
//! to the same BU processing with one binding in the cache, measured in
//! the same run; and for the loaded engine, the time to install its SA
//! pairs and to fill its cache, and the memory each SA pair and each
//! binding adds (the growth of VmRSS over the count).
//!
//! Every mobile node has its own suitable transport SA pair with the engine
//! (selectors host(HoA) <-> host(peer), Mobility Header BU and BA only, as
//! draft-dupont-mipv6-cn-ipsec §2 and RFC 3776 want) and a protect policy for
//! the engine's BA. Each timed BU comes from a care-of address other than the
//! one bound, with a new sequence number, so that every one really updates
//! its binding; the engine opens it, updates the cache and seals the BA.
//! The BUs are built and sealed outside the timed region (ESP anti-replay
//! lets each packet in once), on the mobile nodes' side of the pairs.
//!
//! ```text
//! cargo bench -p common --bench bindings
//! BINDINGS=100000 cargo bench -p common --bench bindings
//! ```

#![allow(clippy::unwrap_used, reason = "bench setup")]

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration as WallDuration;

use common::ipsec::{
    Action, AddressPair, Algorithm, Ipsec, Lifetime, Mode, Prefix, SaKeys, SaPairSpec, Selector,
};
use common::nd::{nd_packet, ALL_NODES, RETRANS_TIMER};
use common::node::{
    lifetime_units, slaac, Cn, CnConfig, Command, Engine, Ha, HaConfig, Iface, MacAddr, Transmit,
};
use common::time::{Duration, Instant};
use common::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use common::wire::nd::{NaFlags, PrefixInfo, RouterAdvert};
use common::wire::NdRepr;
use common::wire::{CodePoints, ExtHeaderRepr, MhType, PacketRepr, UpperRepr};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const HOME_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const ACCESS: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0),
    Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0),
];

/// Bindings in the loaded cache: `BINDINGS`, else a million.
fn loaded() -> usize {
    std::env::var("BINDINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}
/// The mobile nodes' side of the pairs is split over several `Ipsec`s of
/// this many pairs, so that sealing the BUs (outside the timed region)
/// does not walk the policies of every node (theirs all name the same
/// peer).
const SHARD: usize = 16;
/// Timed BUs visit the home addresses in this stride (a prime, so
/// coprime with any loaded size but its multiples), so that any run of
/// them is spread over the whole SPD and binding cache rather than walking
/// it in order.
const STRIDE: usize = 38_197;
/// Requested binding lifetime.
const LIFETIME: Duration = Duration::from_secs(600);
/// [`Bed::fill`]'s waves, 5 virtual seconds each: all of them within
/// [`LIFETIME`].
const WAVES: usize = 100;
/// Hard lifetime of every SA (the correspondent caps bindings by it).
const SA_LIFETIME: Duration = Duration::from_secs(86_400);

fn home_address(i: usize) -> Ipv6Addr {
    slaac(HOME_PREFIX, 0x1_0000 + i as u64)
}

/// The care-of address of node `i` for its BU number `seq`: it alternates
/// between two access links, so each BU moves the binding.
fn care_of(i: usize, seq: u16) -> Ipv6Addr {
    slaac(ACCESS[usize::from(seq % 2)], 0x1_0000 + i as u64)
}

fn host(a: Ipv6Addr) -> Prefix {
    Prefix::host(IpAddr::V6(a))
}

/// Which side of a pair to install.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Mn,
    Engine,
}

/// Installs one side of the transport pair of node `i` between `hoa`
/// and `peer` for BU and BA only, with a protect policy: the mobile
/// node's, or the engine's. Both sides draw the same keys.
fn install(ipsec: &mut Ipsec, side: Side, i: usize, hoa: Ipv6Addr, peer: Ipv6Addr) {
    let alg = Algorithm::Aes128Gcm16;
    let spi = 0x1000 + 2 * u32::try_from(i).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0x6269_6e64 ^ i as u64);
    let mut key = || {
        let mut k = vec![0u8; alg.key_len()];
        rng.fill_bytes(&mut k);
        k
    };
    let (up, down) = (key(), key());
    let bu_ba = [MhType::BindingUpdate.into(), MhType::BindingAck.into()];
    let (local, remote, inbound, outbound) = match side {
        Side::Mn => (hoa, peer, (spi + 1, down), (spi, up)),
        Side::Engine => (peer, hoa, (spi, up), (spi + 1, down)),
    };
    let selector = Selector::mobility(host(local), host(remote), &bu_ba);
    let mut spec = SaPairSpec::new(
        AddressPair {
            local: IpAddr::V6(local),
            peer: IpAddr::V6(remote),
        },
        Mode::Transport,
        alg,
        selector,
        SaKeys {
            spi: inbound.0,
            key: inbound.1,
        },
        SaKeys {
            spi: outbound.0,
            key: outbound.1,
        },
    );
    spec.lifetime = Lifetime {
        hard_time: Some(SA_LIFETIME),
        ..Lifetime::default()
    };
    ipsec.add_protected_pair(Instant::ZERO, &spec).unwrap();
}

/// VmRSS in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[expect(clippy::disallowed_methods, reason = "a bench measures wall time")]
fn wall() -> std::time::Instant {
    std::time::Instant::now()
}

/// An engine holding `n` mobile nodes' SAs, and those nodes.
struct Bed<E> {
    engine: E,
    /// Where BUs go, and with which flags.
    peer: Ipv6Addr,
    flags: u16,
    /// The mobile nodes' side of the pairs, `SHARD` nodes each.
    mns: Vec<Ipsec>,
    /// The last sequence number each node sent.
    seqs: Vec<u16>,
    /// The node the next timed BU comes from.
    cursor: usize,
    /// BUs sent so far.
    sent: u64,
    now: Instant,
    setup: Setup,
}

/// What building a loaded engine took.
#[derive(Default)]
struct Setup {
    sa_pairs: WallDuration,
    per_sa_pair: u64,
    fill: WallDuration,
    per_binding: u64,
}

/// Whether a transmit is a BA (or anything but Neighbor Discovery, which
/// goes as plain ICMPv6).
fn is_signalling(t: &Transmit) -> bool {
    t.bytes.get(6) != Some(&58)
}

impl<E: Engine> Bed<E> {
    /// Builds the SAs on both sides, then `make` the engine from its IPsec
    /// and puts it on a link with a router, past the DAD of its address.
    fn new(n: usize, peer: Ipv6Addr, flags: u16, make: impl FnOnce(Ipsec) -> E) -> Self {
        let mut mns: Vec<Ipsec> = (0..n.div_ceil(SHARD)).map(|_| Ipsec::default()).collect();
        for i in 0..n {
            install(&mut mns[i / SHARD], Side::Mn, i, home_address(i), peer);
        }
        // The engine's side alone, measured.
        let (before, started) = (rss(), wall());
        let mut node = Ipsec::default();
        node.spd.fallback = Action::Bypass;
        for i in 0..n {
            install(&mut node, Side::Engine, i, home_address(i), peer);
        }
        let setup = Setup {
            sa_pairs: started.elapsed(),
            per_sa_pair: rss().saturating_sub(before) / n as u64,
            ..Setup::default()
        };
        let mut engine = make(node);
        let t0 = Instant::ZERO;
        let mac = MacAddr([2, 0, 0, 0, 0, 2]);
        engine
            .handle_command(t0, Command::LinkUp { iface: 0, mac })
            .unwrap();
        let ra = RouterAdvert {
            hop_limit: 64,
            flags: 0,
            router_lifetime: 9000,
            reachable_time: 0,
            retrans_timer: 0,
            source_ll: Some(ROUTER_MAC),
            mtu: None,
            prefixes: vec![PrefixInfo::slaac(peer)],
            advertisement_interval: None,
        };
        let ra = nd_packet(ROUTER_LL, ALL_NODES, &NdRepr::RouterAdvert(ra));
        let ra = ra.to_bytes(&CodePoints::default());
        engine.handle_packet(t0, Iface::Link(0), Some(ROUTER_MAC), &ra);
        let mut bed = Bed {
            engine,
            peer,
            flags,
            mns,
            seqs: vec![0; n],
            cursor: 0,
            sent: 0,
            now: t0,
            setup,
        };
        bed.advance(RETRANS_TIMER * 2);
        bed
    }

    /// Lets `d` pass, running the engine's timers; returns the BAs sent.
    fn advance(&mut self, d: Duration) -> u64 {
        self.now += d;
        self.engine.handle_timeout(self.now);
        self.drain()
    }

    fn drain(&mut self) -> u64 {
        let mut sent = 0;
        while let Some(t) = self.engine.poll_transmit() {
            sent += u64::from(is_signalling(&t));
            black_box(t);
        }
        while let Some(e) = self.engine.poll_event() {
            black_box(e);
        }
        // As the driver: multicast groups are the link's business.
        while self.engine.poll_membership().is_some() {}
        sent
    }

    /// The router confirms it is reachable (a solicited NA), as it would
    /// answer the engine's Neighbor Unreachability Detection, which the
    /// waves of [`Bed::fill`] outlast.
    fn router_reachable(&mut self) {
        let flags = NaFlags {
            router: true,
            solicited: true,
            override_: true,
        };
        let na = NdRepr::NeighborAdvert {
            flags,
            target: ROUTER_LL,
            target_ll: Some(ROUTER_MAC),
        };
        let na = nd_packet(ROUTER_LL, self.peer, &na).to_bytes(&CodePoints::default());
        self.feed(&na);
    }

    /// The next BU of node `i`, sealed as the mobile node sends it.
    fn next_bu(&mut self, i: usize) -> Vec<u8> {
        let seq = self.seqs[i].wrapping_add(1);
        self.seqs[i] = seq;
        self.sent += 1;
        let (hoa, coa) = (home_address(i), care_of(i, seq));
        let mh = MhRepr {
            message: MhMessage::BindingUpdate {
                seq,
                flags: BuFlags(self.flags),
                lifetime: lifetime_units(LIFETIME),
            },
            options: vec![MhOption::AlternateCareOfAddress(coa)],
        };
        let packet = PacketRepr::ipv6(
            coa,
            self.peer,
            vec![ExtHeaderRepr::home_address(hoa)],
            UpperRepr::Mobility(mh),
        )
        .to_bytes(&CodePoints::default());
        let mut out = Vec::new();
        let sealed = self.mns[i / SHARD].outbound(self.now, &packet, &mut out);
        assert!(
            matches!(sealed, Ok(common::ipsec::Outbound::Protected { .. })),
            "{sealed:?}"
        );
        out
    }

    /// Feeds one packet from the router and drains what it caused;
    /// returns the BAs sent.
    fn feed(&mut self, packet: &[u8]) -> u64 {
        self.engine
            .handle_packet(self.now, Iface::Link(0), Some(ROUTER_MAC), packet);
        self.drain()
    }

    /// One BU per node, each acknowledged under ESP (a home agent does so
    /// once the DAD of the home addresses is over; the unsolicited NAs
    /// that follow are let go before the timed runs). The BUs come in
    /// [`WAVES`] waves, each let through its DAD before the next, as
    /// registrations arrive at an agent over time: a million DADs at once
    /// would leave their peak (the pending BUs, the ND timers and frames)
    /// in the maps' capacity and the allocator's free lists, and count it
    /// as the bindings' memory.
    fn fill(&mut self) {
        let n = self.seqs.len();
        // The BUs are sealed first, so that only the engine's work and
        // memory are counted.
        let bus: Vec<Vec<u8>> = (0..n).map(|i| self.next_bu(i)).collect();
        let (before, started) = (rss(), wall());
        let mut acked = 0;
        for wave in bus.chunks(n.div_ceil(WAVES)) {
            self.router_reachable();
            for bu in wave {
                acked += self.feed(bu);
            }
            acked += self.advance(RETRANS_TIMER);
            acked += self.advance(RETRANS_TIMER * 4);
        }
        self.setup.fill = started.elapsed();
        self.setup.per_binding = rss().saturating_sub(before) / n as u64;
        drop(bus);
        assert_eq!(acked, self.sent, "one BA per BU");
        self.check();
    }

    /// Every BU so far was accepted, and answered under ESP.
    fn check(&self) {
        let bas = self.sent;
        let stats = self.engine.stats();
        assert_eq!(stats.drops().count(), 0, "{stats:?}");
        let ipsec = self.engine.ipsec().stats();
        assert_eq!(ipsec.drops().count(), 0, "{ipsec:?}");
        assert_eq!(ipsec.sealed, bas);
        assert_eq!(ipsec.opened, bas);
    }

    /// `iters` fresh BUs, sealed now, fed in the timed region.
    fn run(&mut self, iters: u64) -> WallDuration {
        let n = self.seqs.len();
        let batch: Vec<Vec<u8>> = (0..iters)
            .map(|_| {
                let i = self.cursor;
                self.cursor = (self.cursor + STRIDE) % n;
                self.next_bu(i)
            })
            .collect();
        let start = wall();
        let mut sent = 0;
        for bu in &batch {
            sent += self.feed(black_box(bu));
        }
        let elapsed = start.elapsed();
        assert_eq!(sent, iters, "one BA per BU");
        elapsed
    }
}

fn cn(n: usize) -> Bed<Cn> {
    let mut bed = Bed::new(n, CN, BuFlags::A, |ipsec| {
        Cn::new(CnConfig::new(CN, 3), ipsec, Instant::ZERO)
    });
    bed.fill();
    assert_eq!(bed.engine.bindings(), n);
    bed
}

fn ha(n: usize) -> Bed<Ha> {
    let hoas: Vec<Ipv6Addr> = (0..n).map(home_address).collect();
    let mut bed = Bed::new(n, HA, BuFlags::A | BuFlags::H, |ipsec| {
        let mut cfg = HaConfig::new(HA, hoas, 2);
        cfg.home_prefix = HOME_PREFIX;
        Ha::new(cfg, ipsec)
    });
    bed.fill();
    assert_eq!(bed.engine.bindings(), n);
    bed
}

/// `bindings_1` (one node, one binding) is the baseline for
/// `bindings_100000` in each group.
fn group<E: Engine>(c: &mut Criterion, name: &str, make: fn(usize) -> Bed<E>) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    for n in [1, loaded()] {
        // Built on first use, so that a filtered-out bench costs nothing.
        let mut bed: Option<Bed<E>> = None;
        g.bench_function(format!("bindings_{n}"), |b| {
            let bed = bed.get_or_insert_with(|| make(n));
            b.iter_custom(|iters| bed.run(iters));
        });
        if let Some(bed) = &bed {
            bed.check();
            let s = &bed.setup;
            eprintln!(
                "{name} with {n}: {n} SA pairs installed in {:.2} s, {} B each; \
                 {n} bindings filled in {:.2} s, {} B each",
                s.sa_pairs.as_secs_f64(),
                s.per_sa_pair,
                s.fill.as_secs_f64(),
                s.per_binding
            );
        }
    }
    g.finish();
}

fn bindings(c: &mut Criterion) {
    group(c, "bu/cn", cn);
    group(c, "bu/ha", ha);
}

criterion_group!(benches, bindings);
criterion_main!(benches);
