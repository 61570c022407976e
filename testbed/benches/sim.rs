//! Simulator speed at scale: `n` mobile nodes, each doing [`HANDOFFS`]
//! handoffs with IPsec route optimisation and a UDP flow both ways. Every
//! size runs once, in a process of its own (so its memory is its own),
//! and the table gives the wall time, virtual seconds per wall second,
//! the cost per node against the first size of the same run (1 = linear),
//! and the memory per node: the growth of VmRSS while the world is built
//! (engines, SAs, schedule) and VmHWM at the end of the run (with what
//! the run recorded: arrivals, trace), over `n`, from /proc/self/status.
//!
//! The topology is the demo's (home link with the home agent, correspondent
//! link, two access links, one router) with `n` mobile nodes. One home agent
//! serves every home address; every node has its own transport SA pair for
//! BU/BA with the home agent and with the correspondent, and does IPsec
//! route optimisation. Node `i` first attaches to access link A at
//! `i * PERIOD / n`, then moves to the other access link every `PERIOD`;
//! each node sends one UDP packet a second to the correspondent, which
//! sends one a second back to its home address. Building the topology is
//! not timed; running it is. Every run checks that every node is bound
//! at the home agent and the correspondent and that the flows arrived.
//! After the sizes, the handoff figures of the simulator: the demo's
//! IPsec handoff against the MN–CN round trip, and the packets a
//! make-before-break handoff loses against a break-before-make one.
//!
//! ```text
//! cargo bench -p testbed --bench sim                     # 1 000 and 10 000 nodes
//! cargo bench -p testbed --bench sim -- 1000 10000 100000
//! cargo test -p testbed --bench sim                      # smoke: 10 nodes, checked
//! ```

#![allow(clippy::unwrap_used, reason = "bench setup")]

use std::net::Ipv6Addr;
use std::process::Command;

use common::ipsec::{Action, EspKeyring, Ipsec, Selector};
use common::node::{
    slaac, Cn, CnConfig, Correspondent, Ha, HaConfig, Mn, MnConfig, RouteOptimisation,
};
use common::time::{Duration, Instant};
use common::wire::MhType;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use testbed::sim::{Flow, LinkParams, NodeId, Role, Sim};
use testbed::topology::{host, transport_pair, ACCESS_A, ACCESS_B, CN, CN_PREFIX, HA, HOME_PREFIX};

/// Access-link changes of every node after its first attachment.
const HANDOFFS: u32 = 10;
/// Every node changes access link this often.
const PERIOD: Duration = Duration::from_secs(4);
/// Virtual time each run simulates: the last handoff has a period to settle.
const VIRTUAL_SECS: u64 = PERIOD.as_secs() * (HANDOFFS as u64 + 1);
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
    /// Every node attached and handed off as planned, registered with the
    /// home agent and the correspondent, and most flow packets arrived.
    fn check(&self) {
        assert_eq!(self.sim.link_ups.len(), self.n * (HANDOFFS as usize + 1));
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

/// What one size's process reports.
struct Report {
    n: usize,
    wall_s: f64,
    built_kib: u64,
    peak_kib: u64,
}

/// A field of /proc/self/status, in kB.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Builds and runs `n` nodes here, checks the outcome, and prints the
/// report on one line: n, wall seconds, KiB built, KiB peak.
fn one(n: usize) {
    let before = status_kib("VmRSS:");
    let mut w = build(n);
    let built = status_kib("VmRSS:") - before;
    #[expect(clippy::disallowed_methods, reason = "a bench measures wall time")]
    let start = std::time::Instant::now();
    w.sim.run_until(Instant::from_secs(VIRTUAL_SECS));
    let wall = start.elapsed().as_secs_f64();
    w.check();
    println!("{n} {wall} {built} {}", status_kib("VmHWM:") - before);
}

/// Runs `n` nodes in a child process.
fn spawn(n: usize) -> Report {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--one", &n.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    Report {
        n: f[0].parse().unwrap(),
        wall_s: f[1].parse().unwrap(),
        built_kib: f[2].parse().unwrap(),
        peak_kib: f[3].parse().unwrap(),
    }
}

/// Item 5 of issue 13 in the simulator: the demo's IPsec handoff against
/// the MN–CN round trip, and `scenarios/make-before-break.yaml`'s
/// correspondent flow (1 kHz) losing nothing from access B's arrival
/// (4 s) to the move home (8 s; the last 30 ms before it were on their
/// way to B when the node left), against the switch to access A at 2 s,
/// a break before make.
fn handoffs() -> Vec<String> {
    let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
    let setup = testbed::topology::Setup::new(1, RouteOptimisation::Ipsec);
    let (demo, _) = testbed::demo::run(&setup);
    let mut figures = vec![testbed::summary::Figure {
        item: "5 handoff latency",
        what: "ipsec handoff, simulated demo, ms",
        ours: demo.away_latency().map(ms),
        baseline: "MN–CN RTT",
        base: Some(ms(setup.rtts().0)),
        goal: "≤ 1.05 × RTT",
    }
    .line()];
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/make-before-break.yaml"
    );
    let s = testbed::scenario::read(std::path::Path::new(path)).unwrap();
    let at = |secs: f64| Instant::ZERO + Duration::from_micros((secs * 1e6) as u64);
    for (name, net) in &s.runs {
        let (mut sim, layout, _) = testbed::topology::build_network(net);
        let run = testbed::demo::play(&mut sim, net, &layout, &s.timeline, name);
        let lost = |from: f64, to: f64| {
            run.down_lost
                .iter()
                .filter(|t| (at(from)..at(to)).contains(t))
                .count() as f64
        };
        figures.push(
            testbed::summary::Figure {
                item: "5 handoff latency",
                what: &format!("{name}: packets lost, make before break (B joins, A leaves)"),
                ours: Some(lost(4.0, 7.97)),
                baseline: "break before make (to A)",
                base: Some(lost(2.0, 3.9)),
                goal: "0",
            }
            .line(),
        );
    }
    figures
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, n] = &args[..] {
        if flag == "--one" {
            return one(n.parse().unwrap());
        }
    }
    // `cargo test` runs a bench without `--bench`: a smoke run, checked.
    if !args.iter().any(|a| a == "--bench") {
        let r = spawn(10);
        println!(
            "smoke: 10 mobile nodes, {VIRTUAL_SECS} virtual s in {:.3} s",
            r.wall_s
        );
        return;
    }
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1000, 10_000];
    }
    println!("{HANDOFFS} handoffs a node, {VIRTUAL_SECS} virtual s; memory from VmRSS/VmHWM");
    println!("| mobile nodes | wall s | virtual s per wall s | node-s per wall s | wall per node × the first | bytes per node built | bytes per node at peak |");
    println!("|---|---|---|---|---|---|---|");
    let mut first = None;
    let mut figures = vec![];
    for n in sizes {
        let r = spawn(n);
        let per_node = r.wall_s / r.n as f64;
        let base = *first.get_or_insert(per_node);
        figures.push(
            testbed::summary::Figure {
                item: "1 simulator at scale",
                what: &format!("wall s, {n} mobile nodes"),
                ours: Some(r.wall_s),
                baseline: "the first size's per node, × n",
                base: Some(base * n as f64),
                goal: if n == 10_000 {
                    "< 10 s; ratio 1 (linear)"
                } else {
                    "ratio 1 (linear)"
                },
            }
            .line(),
        );
        let v = VIRTUAL_SECS as f64;
        println!(
            "| {} | {:.3} | {:.1} | {:.0} | {:.2} | {} | {} |",
            r.n,
            r.wall_s,
            v / r.wall_s,
            v * r.n as f64 / r.wall_s,
            per_node / base,
            r.built_kib * 1024 / r.n as u64,
            r.peak_kib * 1024 / r.n as u64,
        );
    }
    for f in figures.into_iter().chain(handoffs()) {
        println!("{f}");
    }
}
