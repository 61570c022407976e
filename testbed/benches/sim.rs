//! Simulator speed with many mobile nodes on the move: virtual seconds
//! simulated per wall-clock second (criterion's elements/s), with 1 000
//! mobile nodes and, as the baseline measured in the same run, with 10.
//!
//! The topology is the demo's (home link with the home agent, correspondent
//! link, two access links, one router) with `n` mobile nodes. One home agent
//! serves every home address; every node has its own transport SA pair for
//! BU/BA with the home agent and with the correspondent, and does IPsec
//! route optimisation. Node `i` first attaches to access link A at
//! `i * PERIOD / n`, then moves to the other access link every `PERIOD`;
//! each node sends one UDP packet a second to the correspondent, which
//! sends one a second back to its home address. Building the topology is
//! not timed; running `VIRTUAL_SECS` of it is.
//!
//! ```text
//! cargo bench -p testbed --bench sim
//! ```

#![allow(clippy::unwrap_used, reason = "bench setup")]

use std::net::Ipv6Addr;
use std::time::Duration as WallDuration;

use common::ipsec::{Action, EspKeyring, Ipsec, Selector};
use common::node::{
    slaac, Cn, CnConfig, Correspondent, Ha, HaConfig, Mn, MnConfig, RouteOptimisation,
};
use common::time::{Duration, Instant};
use common::wire::MhType;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use testbed::sim::{Flow, LinkParams, NodeId, Role, Sim};
use testbed::topology::{host, transport_pair, ACCESS_A, ACCESS_B, CN, CN_PREFIX, HA, HOME_PREFIX};

/// Virtual time each run simulates.
const VIRTUAL_SECS: u64 = 60;
/// Every node changes access link this often.
const PERIOD: Duration = Duration::from_secs(4);
/// Each direction of every node's flow sends this often.
const FLOW_INTERVAL: Duration = Duration::from_secs(1);
const SEED: u64 = 42;

fn home_address(i: usize) -> Ipv6Addr {
    slaac(HOME_PREFIX, 0x1_0000 + i as u64)
}

fn bypassing() -> Ipsec {
    let mut i = Ipsec::default();
    i.spd.fallback = Action::Bypass;
    i
}

struct World {
    sim: Sim,
    ha: NodeId,
    cn: NodeId,
    n: usize,
}

/// The topology with `n` mobile nodes, their moves and flows scheduled.
fn build(n: usize) -> World {
    let mut sim = Sim::new(SEED);
    let mut keys = ChaCha20Rng::seed_from_u64(SEED ^ 0x6b65_7973);
    let (mut ha_ipsec, mut cn_ipsec) = (bypassing(), bypassing());
    let hoas: Vec<Ipv6Addr> = (0..n).map(home_address).collect();
    let mut keyring = EspKeyring::default();
    let bu_ba = [MhType::BindingUpdate.into(), MhType::BindingAck.into()];
    let sa_lifetime = Duration::from_secs(3600);
    let mut mns = vec![];
    for (i, hoa) in hoas.iter().enumerate() {
        let mut ipsec = bypassing();
        let spi = 0x1000 + 4 * u32::try_from(i).unwrap();
        transport_pair(
            &mut keys,
            (&mut keyring, &mut sim.keylog),
            (&mut ipsec, *hoa),
            (&mut ha_ipsec, HA),
            Selector::mobility(host(*hoa), host(HA), &bu_ba),
            spi,
            sa_lifetime,
        );
        transport_pair(
            &mut keys,
            (&mut keyring, &mut sim.keylog),
            (&mut ipsec, *hoa),
            (&mut cn_ipsec, CN),
            Selector::mobility(host(*hoa), host(CN), &bu_ba),
            spi + 2,
            sa_lifetime,
        );
        let mut cfg = MnConfig::new(*hoa, HA, SEED ^ ((i as u64) << 8));
        cfg.correspondents = vec![Correspondent {
            address: CN,
            mode: RouteOptimisation::Ipsec,
        }];
        mns.push(Mn::new(cfg, ipsec));
    }
    let delay = |ms| LinkParams::delay(Duration::from_millis(ms));
    let home = sim.add_link("home", HOME_PREFIX, delay(30));
    let cn_link = sim.add_link("cn", CN_PREFIX, delay(20));
    let access_a = sim.add_link(
        "access-a",
        ACCESS_A,
        LinkParams::delay(Duration::from_micros(200)),
    );
    let access_b = sim.add_link(
        "access-b",
        ACCESS_B,
        LinkParams::delay(Duration::from_micros(200)),
    );
    sim.add_router(
        "router",
        &[home, cn_link, access_a, access_b],
        Duration::from_secs(1),
    );
    let mut ha_cfg = HaConfig::new(HA, hoas.clone(), SEED ^ 2);
    ha_cfg.home_prefix = HOME_PREFIX;
    let ha = Ha::new(ha_cfg, ha_ipsec);
    let ha = sim.add_host("ha", Role::Ha(Box::new(ha)), &[Some(home)]);
    let cn = Cn::new(CnConfig::new(CN, SEED ^ 3), cn_ipsec, Instant::ZERO);
    let cn = sim.add_host("cn", Role::Cn(Box::new(cn)), &[Some(cn_link)]);
    let end = Instant::from_secs(VIRTUAL_SECS);
    for (i, (mn, hoa)) in mns.into_iter().zip(hoas).enumerate() {
        let node = sim.add_host(&format!("mn{i}"), Role::Mn(Box::new(mn)), &[None]);
        let first = Instant::ZERO + PERIOD * u32::try_from(i).unwrap() / u32::try_from(n).unwrap();
        let (mut at, mut to) = (first, access_a);
        while at < end {
            sim.move_at(at, node, 0, Some(to));
            to = if to == access_a { access_b } else { access_a };
            at += PERIOD;
        }
        let start = first + Duration::from_millis(500);
        let flow = |from, src, dst| Flow {
            from,
            src,
            dst,
            interval: FLOW_INTERVAL,
            until: end,
        };
        sim.flow(start, flow(node, hoa, CN));
        sim.flow(start, flow(cn, CN, hoa));
    }
    World { sim, ha, cn, n }
}

impl World {
    /// Every node registered with the home agent and the correspondent, and
    /// most flow packets arrived.
    fn check(&self) {
        let ha = self.sim.ha(self.ha).unwrap();
        let cn = self.sim.cn(self.cn).unwrap();
        assert_eq!(ha.bindings(), self.n);
        assert_eq!(cn.bindings(), self.n);
        let sent: u64 = (0..2 * self.n)
            .map(|f| self.sim.flow_sent(u32::try_from(f).unwrap()))
            .sum();
        let arrived = self.sim.arrivals.len() as u64;
        assert!(arrived * 10 >= sent * 9, "{arrived} of {sent} flow packets");
    }
}

fn sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10)
        .throughput(Throughput::Elements(VIRTUAL_SECS));
    for n in [10, 1000] {
        g.bench_function(format!("mobile_nodes_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = WallDuration::ZERO;
                for _ in 0..iters {
                    let mut w = build(n);
                    #[expect(clippy::disallowed_methods, reason = "a bench measures wall time")]
                    let start = std::time::Instant::now();
                    w.sim.run_until(Instant::from_secs(VIRTUAL_SECS));
                    total += start.elapsed();
                    w.check();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sim);
criterion_main!(benches);
